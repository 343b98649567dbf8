//! The `RuntimeDefault` syscall filter: containerd's default profile (an allow list; anything
//! else fails with `EPERM`), adjusted to the container's capabilities as containerd adjusts it
//! (`mount`, `unshare`, `setns`, … only with `CAP_SYS_ADMIN`; `clone` without namespace flags
//! otherwise, and `clone3` failing with `ENOSYS` so libcs fall back to `clone`; `ptrace` and
//! friends with `CAP_SYS_PTRACE`; …), compiled to BPF by `seccompiler`.
//!
//! Differences from containerd's profile, each stricter: `io_uring_*` is not allowed (Docker
//! dropped it too, for its record of kernel bugs), and only the host architecture's own ABI is
//! allowed (a 32-bit or x32 syscall kills the process: seccompiler's filters check the
//! architecture first). Built for x86_64; elsewhere `RuntimeDefault` refuses to start.

use std::collections::BTreeMap;

use libc::c_long;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

/// `io_pgetevents`, which the libc crate does not name (x86_64's number).
#[cfg(target_arch = "x86_64")]
const SYS_IO_PGETEVENTS: c_long = 333;

/// Always allowed.
#[cfg(target_arch = "x86_64")]
const ALLOWED: &[c_long] = &[
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_access,
    libc::SYS_adjtimex,
    libc::SYS_alarm,
    libc::SYS_bind,
    libc::SYS_brk,
    libc::SYS_capget,
    libc::SYS_capset,
    libc::SYS_chdir,
    libc::SYS_chmod,
    libc::SYS_chown,
    libc::SYS_clock_adjtime,
    libc::SYS_clock_getres,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_close,
    libc::SYS_close_range,
    libc::SYS_connect,
    libc::SYS_copy_file_range,
    libc::SYS_creat,
    libc::SYS_dup,
    libc::SYS_dup2,
    libc::SYS_dup3,
    libc::SYS_epoll_create,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_ctl_old,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_wait_old,
    libc::SYS_eventfd,
    libc::SYS_eventfd2,
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_fadvise64,
    libc::SYS_fallocate,
    libc::SYS_fanotify_mark,
    libc::SYS_fchdir,
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    libc::SYS_fchown,
    libc::SYS_fchownat,
    libc::SYS_fcntl,
    libc::SYS_fdatasync,
    libc::SYS_fgetxattr,
    libc::SYS_flistxattr,
    libc::SYS_flock,
    libc::SYS_fork,
    libc::SYS_fremovexattr,
    libc::SYS_fsetxattr,
    libc::SYS_fstat,
    libc::SYS_fstatfs,
    libc::SYS_fsync,
    libc::SYS_ftruncate,
    libc::SYS_futex,
    libc::SYS_futex_waitv,
    libc::SYS_futimesat,
    libc::SYS_getcpu,
    libc::SYS_getcwd,
    libc::SYS_getdents,
    libc::SYS_getdents64,
    libc::SYS_getegid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getgroups,
    libc::SYS_getitimer,
    libc::SYS_getpeername,
    libc::SYS_getpgid,
    libc::SYS_getpgrp,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_getpriority,
    libc::SYS_getrandom,
    libc::SYS_getresgid,
    libc::SYS_getresuid,
    libc::SYS_getrlimit,
    libc::SYS_get_robust_list,
    libc::SYS_getrusage,
    libc::SYS_getsid,
    libc::SYS_getsockname,
    libc::SYS_getsockopt,
    libc::SYS_get_thread_area,
    libc::SYS_gettid,
    libc::SYS_gettimeofday,
    libc::SYS_getuid,
    libc::SYS_getxattr,
    libc::SYS_inotify_add_watch,
    libc::SYS_inotify_init,
    libc::SYS_inotify_init1,
    libc::SYS_inotify_rm_watch,
    libc::SYS_io_cancel,
    libc::SYS_ioctl,
    libc::SYS_io_destroy,
    libc::SYS_io_getevents,
    SYS_IO_PGETEVENTS,
    libc::SYS_ioprio_get,
    libc::SYS_ioprio_set,
    libc::SYS_io_setup,
    libc::SYS_io_submit,
    libc::SYS_kill,
    libc::SYS_landlock_add_rule,
    libc::SYS_landlock_create_ruleset,
    libc::SYS_landlock_restrict_self,
    libc::SYS_lchown,
    libc::SYS_lgetxattr,
    libc::SYS_link,
    libc::SYS_linkat,
    libc::SYS_listen,
    libc::SYS_listxattr,
    libc::SYS_llistxattr,
    libc::SYS_lremovexattr,
    libc::SYS_lseek,
    libc::SYS_lsetxattr,
    libc::SYS_lstat,
    libc::SYS_madvise,
    libc::SYS_membarrier,
    libc::SYS_memfd_create,
    libc::SYS_memfd_secret,
    libc::SYS_mincore,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_mknod,
    libc::SYS_mknodat,
    libc::SYS_mlock,
    libc::SYS_mlock2,
    libc::SYS_mlockall,
    libc::SYS_mmap,
    libc::SYS_mprotect,
    libc::SYS_mq_getsetattr,
    libc::SYS_mq_notify,
    libc::SYS_mq_open,
    libc::SYS_mq_timedreceive,
    libc::SYS_mq_timedsend,
    libc::SYS_mq_unlink,
    libc::SYS_mremap,
    libc::SYS_msgctl,
    libc::SYS_msgget,
    libc::SYS_msgrcv,
    libc::SYS_msgsnd,
    libc::SYS_msync,
    libc::SYS_munlock,
    libc::SYS_munlockall,
    libc::SYS_munmap,
    libc::SYS_nanosleep,
    libc::SYS_newfstatat,
    libc::SYS_open,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_pause,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_send_signal,
    libc::SYS_pipe,
    libc::SYS_pipe2,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_prctl,
    libc::SYS_pread64,
    libc::SYS_preadv,
    libc::SYS_preadv2,
    libc::SYS_prlimit64,
    libc::SYS_process_mrelease,
    libc::SYS_pselect6,
    libc::SYS_ptrace,
    libc::SYS_pwrite64,
    libc::SYS_pwritev,
    libc::SYS_pwritev2,
    libc::SYS_read,
    libc::SYS_readahead,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
    libc::SYS_readv,
    libc::SYS_recvfrom,
    libc::SYS_recvmmsg,
    libc::SYS_recvmsg,
    libc::SYS_remap_file_pages,
    libc::SYS_removexattr,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_restart_syscall,
    libc::SYS_rmdir,
    libc::SYS_rseq,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigpending,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigqueueinfo,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigsuspend,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_rt_tgsigqueueinfo,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_getattr,
    libc::SYS_sched_getparam,
    libc::SYS_sched_get_priority_max,
    libc::SYS_sched_get_priority_min,
    libc::SYS_sched_getscheduler,
    libc::SYS_sched_rr_get_interval,
    libc::SYS_sched_setaffinity,
    libc::SYS_sched_setattr,
    libc::SYS_sched_setparam,
    libc::SYS_sched_setscheduler,
    libc::SYS_sched_yield,
    libc::SYS_seccomp,
    libc::SYS_select,
    libc::SYS_semctl,
    libc::SYS_semget,
    libc::SYS_semop,
    libc::SYS_semtimedop,
    libc::SYS_sendfile,
    libc::SYS_sendmmsg,
    libc::SYS_sendmsg,
    libc::SYS_sendto,
    libc::SYS_setfsgid,
    libc::SYS_setfsuid,
    libc::SYS_setgid,
    libc::SYS_setgroups,
    libc::SYS_setitimer,
    libc::SYS_setpgid,
    libc::SYS_setpriority,
    libc::SYS_setregid,
    libc::SYS_setresgid,
    libc::SYS_setresuid,
    libc::SYS_setreuid,
    libc::SYS_setrlimit,
    libc::SYS_set_robust_list,
    libc::SYS_setsid,
    libc::SYS_setsockopt,
    libc::SYS_set_thread_area,
    libc::SYS_set_tid_address,
    libc::SYS_setuid,
    libc::SYS_setxattr,
    libc::SYS_shmat,
    libc::SYS_shmctl,
    libc::SYS_shmdt,
    libc::SYS_shmget,
    libc::SYS_shutdown,
    libc::SYS_sigaltstack,
    libc::SYS_signalfd,
    libc::SYS_signalfd4,
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_splice,
    libc::SYS_stat,
    libc::SYS_statfs,
    libc::SYS_statx,
    libc::SYS_symlink,
    libc::SYS_symlinkat,
    libc::SYS_sync,
    libc::SYS_sync_file_range,
    libc::SYS_syncfs,
    libc::SYS_sysinfo,
    libc::SYS_tee,
    libc::SYS_tgkill,
    libc::SYS_time,
    libc::SYS_timer_create,
    libc::SYS_timer_delete,
    libc::SYS_timer_getoverrun,
    libc::SYS_timer_gettime,
    libc::SYS_timer_settime,
    libc::SYS_timerfd_create,
    libc::SYS_timerfd_gettime,
    libc::SYS_timerfd_settime,
    libc::SYS_times,
    libc::SYS_tkill,
    libc::SYS_truncate,
    libc::SYS_umask,
    libc::SYS_uname,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_utime,
    libc::SYS_utimensat,
    libc::SYS_utimes,
    libc::SYS_vfork,
    libc::SYS_vmsplice,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_arch_prctl,
    libc::SYS_modify_ldt,
];

/// Allowed only with a capability (containerd's groups).
#[cfg(target_arch = "x86_64")]
fn with_capability(capability: &str) -> &'static [c_long] {
    match capability {
        "CAP_DAC_READ_SEARCH" => &[libc::SYS_open_by_handle_at],
        "CAP_SYS_ADMIN" => &[
            libc::SYS_bpf,
            libc::SYS_clone,
            libc::SYS_clone3,
            libc::SYS_fanotify_init,
            libc::SYS_fsconfig,
            libc::SYS_fsmount,
            libc::SYS_fsopen,
            libc::SYS_fspick,
            libc::SYS_lookup_dcookie,
            libc::SYS_mount,
            libc::SYS_mount_setattr,
            libc::SYS_move_mount,
            libc::SYS_name_to_handle_at,
            libc::SYS_open_tree,
            libc::SYS_perf_event_open,
            libc::SYS_quotactl,
            libc::SYS_quotactl_fd,
            libc::SYS_setdomainname,
            libc::SYS_sethostname,
            libc::SYS_setns,
            libc::SYS_syslog,
            libc::SYS_umount2,
            libc::SYS_unshare,
        ],
        "CAP_SYS_BOOT" => &[libc::SYS_reboot],
        "CAP_SYS_CHROOT" => &[libc::SYS_chroot],
        "CAP_SYS_MODULE" => &[libc::SYS_delete_module, libc::SYS_init_module, libc::SYS_finit_module],
        "CAP_SYS_PACCT" => &[libc::SYS_acct],
        "CAP_SYS_PTRACE" => &[
            libc::SYS_kcmp,
            libc::SYS_pidfd_getfd,
            libc::SYS_process_madvise,
            libc::SYS_process_vm_readv,
            libc::SYS_process_vm_writev,
        ],
        "CAP_SYS_RAWIO" => &[libc::SYS_iopl, libc::SYS_ioperm],
        "CAP_SYS_TIME" => &[libc::SYS_settimeofday, libc::SYS_clock_settime],
        "CAP_SYS_TTY_CONFIG" => &[libc::SYS_vhangup],
        "CAP_SYSLOG" => &[libc::SYS_syslog],
        "CAP_BPF" => &[libc::SYS_bpf],
        "CAP_PERFMON" => &[libc::SYS_perf_event_open],
        _ => &[],
    }
}

/// `personality` values allowed without a capability (Linux, and Linux with the 32-bit and
/// `UNAME26` flags containerd lets through; `0xffffffff` queries).
const PERSONALITIES: [u64; 5] = [0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// Namespace flags `clone` may not carry without `CAP_SYS_ADMIN`.
const NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, String> {
    SeccompRule::new(conditions).map_err(|e| e.to_string())
}

fn arg_condition(index: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, String> {
    SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value).map_err(|e| e.to_string())
}

/// The filters to install, in order, for a container with `capabilities`: the allow list
/// (`EPERM` otherwise), then one that makes `clone3` fail with `ENOSYS` when `CAP_SYS_ADMIN` is
/// not held (the later filter's answer wins among equal actions).
#[cfg(target_arch = "x86_64")]
pub fn runtime_default(capabilities: &[String]) -> Result<Vec<BpfProgram>, String> {
    let arch = seccompiler::TargetArch::x86_64;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for nr in ALLOWED.iter().chain(capabilities.iter().flat_map(|c| with_capability(c))) {
        rules.insert(*nr, Vec::new());
    }
    let personality = PERSONALITIES
        .iter()
        .map(|v| arg_condition(0, SeccompCmpOp::Eq, *v).and_then(|c| rule(vec![c])))
        .collect::<Result<Vec<_>, _>>()?;
    rules.entry(libc::SYS_personality).or_insert(personality);
    let admin = capabilities.iter().any(|c| c == "CAP_SYS_ADMIN");
    if !admin {
        let no_namespaces = arg_condition(0, SeccompCmpOp::MaskedEq(NAMESPACE_FLAGS), 0)?;
        rules.insert(libc::SYS_clone, vec![rule(vec![no_namespaces])?]);
    }
    let allow = SeccompFilter::new(rules, SeccompAction::Errno(libc::EPERM as u32), SeccompAction::Allow, arch)
        .map_err(|e| e.to_string())?;
    let mut programs: Vec<BpfProgram> = vec![allow.try_into().map_err(|e: seccompiler::BackendError| e.to_string())?];
    if !admin {
        let clone3 = BTreeMap::from([(libc::SYS_clone3, Vec::new())]);
        let nosys = SeccompFilter::new(clone3, SeccompAction::Allow, SeccompAction::Errno(libc::ENOSYS as u32), arch)
            .map_err(|e| e.to_string())?;
        programs.push(nosys.try_into().map_err(|e: seccompiler::BackendError| e.to_string())?);
    }
    Ok(programs)
}

#[cfg(not(target_arch = "x86_64"))]
pub fn runtime_default(_capabilities: &[String]) -> Result<Vec<BpfProgram>, String> {
    Err("the RuntimeDefault seccomp profile is only built for x86_64 (set seccompProfile Unconfined)".into())
}

/// Install `programs` on the calling thread (which must have `no_new_privs` set or
/// `CAP_SYS_ADMIN`); they apply to what it executes next.
pub fn install(programs: &[BpfProgram]) -> Result<(), String> {
    for p in programs {
        seccompiler::apply_filter(p).map_err(|e| format!("install the seccomp filter: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_compiles_for_default_and_added_capabilities() {
        let defaults: Vec<String> = logic::security::DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
        assert_eq!(runtime_default(&defaults).map(|p| p.len()), Ok(2), "allow list, then clone3 → ENOSYS");
        let admin = vec!["CAP_SYS_ADMIN".to_string()];
        assert_eq!(runtime_default(&admin).map(|p| p.len()), Ok(1), "clone3 allowed with CAP_SYS_ADMIN");
        for nr in [libc::SYS_mount, libc::SYS_unshare, libc::SYS_setns, libc::SYS_reboot, libc::SYS_io_uring_setup] {
            assert!(!ALLOWED.contains(&nr), "{nr} needs a capability or is refused");
        }
    }
}
