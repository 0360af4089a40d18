//! Checks, before any executor starts, that io_uring can be used: the syscalls are allowed
//! (containers' seccomp profiles and `kernel.io_uring_disabled` block them) and enough memory
//! may be locked. glommio panics in either case; we turn them into one clear error instead.

/// Locked memory each executor needs: glommio refuses to start a reactor below 512 KiB.
pub const EXECUTOR_MEMLOCK_BYTES_MIN: u64 = 512 << 10;

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "io_uring is blocked ({cause}). Flink does all its I/O through io_uring. In Docker, run with \
         `--security-opt seccomp=deploy/seccomp-io_uring.json` (or a profile allowing io_uring_setup, \
         io_uring_enter and io_uring_register); on the host, set `sysctl kernel.io_uring_disabled=0`"
    )]
    Blocked { cause: String },
    #[error(
        "locked-memory limit is {limit_bytes} bytes but {executors} executors need at least {needed_bytes}. \
         Raise it: `ulimit -l unlimited`, Docker `--ulimit memlock=-1`, or compose `ulimits: memlock: -1`"
    )]
    MemoryLock {
        limit_bytes: u64,
        needed_bytes: u64,
        executors: usize,
    },
}

/// Runs both checks for `executors` executors; raises the soft memlock limit to the hard one.
pub fn check(executors: usize) -> Result<(), PreflightError> {
    check_io_uring()?;
    check_memory_lock(executors)
}

fn check_io_uring() -> Result<(), PreflightError> {
    // SAFETY: io_uring_params is plain data; the kernel writes into it and we close the fd.
    let mut params: [u8; 120] = [0; 120];
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 2u32, params.as_mut_ptr()) };
    if fd >= 0 {
        // SAFETY: fd is a descriptor we own.
        unsafe { libc::close(fd as i32) };
        return Ok(());
    }
    let error = std::io::Error::last_os_error();
    let cause = match error.raw_os_error() {
        Some(libc::EPERM) => {
            format!("io_uring_setup: {error}; seccomp or kernel.io_uring_disabled forbids it")
        }
        Some(libc::ENOSYS) => {
            format!("io_uring_setup: {error}; the kernel or a seccomp filter lacks io_uring")
        }
        // Anything else (e.g. ENOMEM) is not a block; let glommio report it.
        _ => return Ok(()),
    };
    Err(PreflightError::Blocked { cause })
}

fn check_memory_lock(executors: usize) -> Result<(), PreflightError> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write and read a plain struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) != 0 {
            return Ok(());
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) == 0 {
                limit = raised;
            }
        }
    }
    if limit.rlim_cur < EXECUTOR_MEMLOCK_BYTES_MIN {
        return Err(PreflightError::MemoryLock {
            limit_bytes: limit.rlim_cur,
            needed_bytes: EXECUTOR_MEMLOCK_BYTES_MIN,
            executors,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves the error texts name the fix a user needs.
    #[test]
    fn errors_name_the_fix() {
        let blocked = PreflightError::Blocked {
            cause: "EPERM".into(),
        }
        .to_string();
        assert!(blocked.contains("seccomp") && blocked.contains("io_uring_disabled"));
        let memlock = PreflightError::MemoryLock {
            limit_bytes: 65536,
            needed_bytes: 524288,
            executors: 3,
        }
        .to_string();
        assert!(memlock.contains("ulimit -l") && memlock.contains("memlock"));
    }
}
