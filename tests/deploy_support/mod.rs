//! Helpers of tests/deploy.rs: the kustomize renderer, the RBAC model
//! (with its checks) and the monitoring checks.

pub mod kustomize;
pub mod monitoring;
pub mod rbac;

pub const NAMESPACE: &str = "imagedrift";
pub const SERVICE_ACCOUNT: &str = "imagedrift";
pub const NONROOT_UID: i64 = 65532;
