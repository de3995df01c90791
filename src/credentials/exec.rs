//! Running a credential program (a kubelet plugin, a docker credential
//! helper) safely: its answer on stdout bounded in size, a deadline after
//! which it is killed, and the first line of its stderr kept for messages.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Largest stdout accepted from a credential program.
pub(crate) const MAX_STDOUT: usize = 1 << 20;
/// Stderr kept for messages.
const MAX_STDERR: usize = 64 << 10;

/// Why a credential program gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ExecError {
    /// It could not be started.
    #[error("cannot run {program}: {reason}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        reason: String,
    },
    /// It did not finish in time and was killed.
    #[error("{program} did not answer within {timeout:?} and was killed{}", stderr_suffix(.stderr))]
    Timeout {
        /// The program.
        program: String,
        /// The deadline.
        timeout: Duration,
        /// First line of its stderr.
        stderr: String,
    },
    /// It exited unsuccessfully.
    #[error("{program} exited with {status}{}", stderr_suffix(.stderr))]
    Exit {
        /// The program.
        program: String,
        /// Exit code or signal.
        status: String,
        /// First line of its stderr (or stdout when stderr is empty).
        stderr: String,
        /// Its stdout (docker helpers say "credentials not found" there).
        stdout: String,
    },
    /// It printed more than [`MAX_STDOUT`] bytes.
    #[error("{program} printed more than {MAX_STDOUT} bytes on stdout; killed and ignored")]
    TooMuch {
        /// The program.
        program: String,
    },
}

fn stderr_suffix(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(" (stderr: {s})")
    }
}

/// The first non-blank line, trimmed and cut to 300 characters.
pub(crate) fn first_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    line.chars().take(300).collect()
}

/// Reads at most `cap` bytes; `Err(())` when there was more.
async fn read_capped(mut r: impl AsyncRead + Unpin, cap: usize) -> Result<Vec<u8>, Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return Ok(out),
            Ok(n) => {
                if out.len() + n > cap {
                    out.extend_from_slice(&buf[..cap - out.len()]);
                    return Err(out);
                }
                out.extend_from_slice(&buf[..n]);
            }
        }
    }
}

/// Runs `program args…` with `env` added to ours, writes `stdin`, and
/// returns its stdout when it exits 0 within `timeout`.
pub(crate) async fn run(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    stdin: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, ExecError> {
    let name = program.display().to_string();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| ExecError::Spawn {
        program: name.clone(),
        reason: e.to_string(),
    })?;
    let (Some(mut input), Some(out), Some(err)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(ExecError::Spawn {
            program: name,
            reason: "no pipes to the child".into(),
        });
    };
    let stderr_task = tokio::spawn(read_capped(err, MAX_STDERR));
    let work = async {
        // A program that never reads stdin must not block us: write in the
        // background and ignore a broken pipe.
        let payload = stdin.to_vec();
        let writer = tokio::spawn(async move {
            let _ = input.write_all(&payload).await;
            let _ = input.shutdown().await;
        });
        let stdout = read_capped(out, MAX_STDOUT).await;
        writer.abort();
        match stdout {
            Ok(bytes) => Ok((bytes, child.wait().await)),
            Err(_) => Err(()),
        }
    };
    let outcome = tokio::time::timeout(timeout, work).await;
    let stderr_of = |t: tokio::task::JoinHandle<Result<Vec<u8>, Vec<u8>>>| async move {
        match tokio::time::timeout(Duration::from_secs(1), t).await {
            Ok(Ok(Ok(b) | Err(b))) => first_line(&b),
            _ => String::new(),
        }
    };
    match outcome {
        Err(_) => {
            let _ = child.kill().await;
            Err(ExecError::Timeout {
                program: name,
                timeout,
                stderr: stderr_of(stderr_task).await,
            })
        }
        Ok(Err(())) => {
            let _ = child.kill().await;
            stderr_task.abort();
            Err(ExecError::TooMuch { program: name })
        }
        Ok(Ok((stdout, status))) => {
            let status = status.map_err(|e| ExecError::Spawn {
                program: name.clone(),
                reason: e.to_string(),
            })?;
            if status.success() {
                stderr_task.abort();
                return Ok(stdout);
            }
            let mut stderr = stderr_of(stderr_task).await;
            if stderr.is_empty() {
                stderr = first_line(&stdout);
            }
            let status = match status.code() {
                Some(c) => format!("exit status {c}"),
                None => format!("{status}"),
            };
            Err(ExecError::Exit {
                program: name,
                status,
                stderr,
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_lines() {
        assert_eq!(
            first_line(b"\n  \n  boom: no role\nmore\n"),
            "boom: no role"
        );
        assert_eq!(first_line(b""), "");
        assert_eq!(first_line(&[b'x'; 1000]).len(), 300);
    }
}
