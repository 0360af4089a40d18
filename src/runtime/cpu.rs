//! The CPUs this process may run on, from `sched_getaffinity`. glommio's placement ignores the
//! affinity mask, and containers (`--cpuset-cpus`) and `taskset` restrict it, so we read it
//! ourselves and pin executors only inside it.

/// CPU numbers in the process's affinity mask, ascending.
pub fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data, filled by the kernel for the calling thread (pid 0).
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let result =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if result != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let cpus = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: index is below CPU_SETSIZE.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect();
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    /// Proves the mask is readable and not empty.
    #[test]
    fn reads_affinity_mask() {
        let cpus = super::allowed_cpus().unwrap();
        assert!(!cpus.is_empty());
    }
}
