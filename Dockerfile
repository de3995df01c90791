# syntax=docker/dockerfile:1
#
# imagedrift container image: a static (musl) binary on distroless/static,
# non-root (65532), nothing written to the root filesystem at run time.
#
#   docker build -t imagedrift:dev .
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) -t ... .
#
# The builder runs on the target platform (no cross-compiling): with buildx,
# `--platform linux/amd64,linux/arm64` builds each natively or under emulation.

ARG RUST_VERSION=1.95

# Alpine's Rust is a musl toolchain: the binary is static, and C dependencies
# (ring, aws-lc-sys via rustls) build with the native gcc against musl and the
# Linux headers (aws-lc includes <linux/random.h>, which Debian's musl-gcc
# wrapper cannot see). cmake and perl are aws-lc-sys's fallback build path.
FROM docker.io/library/rust:${RUST_VERSION}-alpine AS build
ARG TARGETARCH
RUN apk add --no-cache build-base linux-headers cmake perl
RUN case "${TARGETARCH:-amd64}" in \
      amd64) echo x86_64-unknown-linux-musl  > /rust-target ;; \
      arm64) echo aarch64-unknown-linux-musl > /rust-target ;; \
      *) echo "unsupported TARGETARCH ${TARGETARCH}" >&2; exit 1 ;; \
    esac \
 && rustup target add "$(cat /rust-target)"
# Rust's musl targets link statically by default (crt-static); the build
# step below checks it rather than forcing it through RUSTFLAGS, which would
# also hit proc-macros.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_TERM_COLOR=never
WORKDIR /src
COPY . .
# Cache mounts keep the crate registry and build artefacts between builds;
# the binary is copied out of the cached target directory. The last step
# refuses a dynamically linked binary: distroless/static has no libc.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(cat /rust-target)" \
 && cargo build --release --locked --bin imagedrift --target "$target" \
 && cp "target/$target/release/imagedrift" /imagedrift \
 && ! readelf -d /imagedrift | grep -q NEEDED

# distroless/static: CA certificates (registry TLS), /etc/passwd with
# nonroot=65532, tzdata; no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/imagedrift/imagedrift
LABEL org.opencontainers.image.title="imagedrift" \
      org.opencontainers.image.description="Reports Kubernetes containers running image content their registry no longer serves for the tag in their spec" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /imagedrift /usr/local/bin/imagedrift
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/imagedrift"]
CMD ["run"]
