//! Process lifetime hooks: exit, reaping children, and `main` returning.

use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use libc::{id_t, idtype_t, pid_t, rusage, siginfo_t};
use tracer_wire::{Event, ExitStatus};

use super::call_real;
use crate::record;
use crate::stream::{Whose, emit_small, emit_small_by};

/// Pid that already reported its Exit (main returning, then an atexit
/// handler calling `_exit`, must not report twice). A vfork child stores its
/// own pid, which never matches the parent's.
static EXITED_PID: AtomicU32 = AtomicU32::new(0);

/// `immediate`: `_exit`, after which nothing of the process runs; a fork
/// child that recorded nothing then leaves its exit to its parent's wait
/// ([`crate::stream::exit_reported_by_parent`]). After `exit`, atexit
/// handlers and stdio may still record, so it records its own.
fn record_exit(status: c_int, immediate: bool) {
    if immediate && crate::stream::exit_reported_by_parent() {
        return;
    }
    record(|_| {
        let pid = crate::sys::getpid();
        if EXITED_PID.swap(pid, Ordering::Relaxed) == pid {
            return;
        }
        emit_small_by(
            &Event::Exit {
                status: ExitStatus::Code(status & 0xff),
            },
            0,
            Whose::Caller,
        );
    });
}

macro_rules! exit_hook {
    ($name:ident, $immediate:expr) => {
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(status: c_int) -> ! {
            type F = unsafe extern "C" fn(c_int) -> !;
            record_exit(status, $immediate);
            // `exit` still runs atexit handlers, which may record; the
            // library's destructor seals after them.
            if $immediate {
                crate::stream::seal();
            }
            // SAFETY: F is the prototype of the real function.
            match unsafe { crate::real::$name.get::<F>() } {
                // SAFETY: forwarding the caller's argument.
                Some(f) => unsafe { f(status) },
                None => crate::sys::exit_group(status),
            }
        }
    };
}
exit_hook!(exit, false);
exit_hook!(_exit, true);
exit_hook!(_Exit, true);

type MainFn = unsafe extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char) -> c_int;
/// The program's `main`, wrapped so returning from it is recorded too
/// (libc's internal call to `exit` bypasses our `exit` hook).
static MAIN: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

unsafe extern "C" fn main_wrapper(
    argc: c_int,
    argv: *mut *mut c_char,
    envp: *mut *mut c_char,
) -> c_int {
    let p = MAIN.load(Ordering::Relaxed);
    // SAFETY: MAIN holds the non-null main pointer libc gave us.
    let main = unsafe { core::mem::transmute::<*mut c_void, MainFn>(p) };
    // SAFETY: calling the program's main with its own arguments.
    let ret = unsafe { main(argc, argv, envp) };
    let e = crate::sys::Errno::save();
    record_exit(ret, false);
    e.restore();
    ret
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __libc_start_main(
    main: Option<MainFn>,
    argc: c_int,
    argv: *mut *mut c_char,
    init: *mut c_void,
    fini: *mut c_void,
    rtld_fini: *mut c_void,
    stack_end: *mut c_void,
) -> c_int {
    type F = unsafe extern "C" fn(
        Option<MainFn>,
        c_int,
        *mut *mut c_char,
        *mut c_void,
        *mut c_void,
        *mut c_void,
        *mut c_void,
    ) -> c_int;
    let mut main = main;
    if let Some(m) = main
        && crate::stream::ACTIVE.load(Ordering::Acquire)
    {
        MAIN.store(m as *mut c_void, Ordering::Relaxed);
        main = Some(main_wrapper);
    }
    call_real!(
        __libc_start_main: F,
        (main, argc, argv, init, fini, rtld_fini, stack_end),
        crate::sys::exit_group(127)
    )
}

fn decode_status(st: c_int) -> Option<ExitStatus> {
    if libc::WIFEXITED(st) {
        Some(ExitStatus::Code(libc::WEXITSTATUS(st)))
    } else if libc::WIFSIGNALED(st) {
        Some(ExitStatus::Signal(libc::WTERMSIG(st)))
    } else {
        None
    }
}

fn record_reaped(pid: pid_t, status: c_int) {
    if pid <= 0 {
        return;
    }
    if let Some(status) = decode_status(status) {
        record(|_| {
            emit_small(
                &Event::ChildExit {
                    child: pid as u32,
                    status,
                },
                0,
            );
        });
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn wait(status: *mut c_int) -> pid_t {
    type F = unsafe extern "C" fn(*mut c_int) -> pid_t;
    // A null status pointer still lets us learn the status via our own.
    let mut local = 0;
    let sp = if status.is_null() {
        &mut local as *mut c_int
    } else {
        status
    };
    let ret = call_real!(wait: F, (sp), -1);
    // SAFETY: sp is valid; the kernel filled it when ret > 0.
    record_reaped(ret, unsafe { *sp });
    ret
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn waitpid(pid: pid_t, status: *mut c_int, options: c_int) -> pid_t {
    type F = unsafe extern "C" fn(pid_t, *mut c_int, c_int) -> pid_t;
    let mut local = 0;
    let sp = if status.is_null() {
        &mut local as *mut c_int
    } else {
        status
    };
    let ret = call_real!(waitpid: F, (pid, sp, options), -1);
    // SAFETY: sp is valid; the kernel filled it when ret > 0.
    record_reaped(ret, unsafe { *sp });
    ret
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn wait3(status: *mut c_int, options: c_int, ru: *mut rusage) -> pid_t {
    type F = unsafe extern "C" fn(*mut c_int, c_int, *mut rusage) -> pid_t;
    let mut local = 0;
    let sp = if status.is_null() {
        &mut local as *mut c_int
    } else {
        status
    };
    let ret = call_real!(wait3: F, (sp, options, ru), -1);
    // SAFETY: sp is valid; the kernel filled it when ret > 0.
    record_reaped(ret, unsafe { *sp });
    ret
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn wait4(
    pid: pid_t,
    status: *mut c_int,
    options: c_int,
    ru: *mut rusage,
) -> pid_t {
    type F = unsafe extern "C" fn(pid_t, *mut c_int, c_int, *mut rusage) -> pid_t;
    let mut local = 0;
    let sp = if status.is_null() {
        &mut local as *mut c_int
    } else {
        status
    };
    let ret = call_real!(wait4: F, (pid, sp, options, ru), -1);
    // SAFETY: sp is valid; the kernel filled it when ret > 0.
    record_reaped(ret, unsafe { *sp });
    ret
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn waitid(
    idtype: idtype_t,
    id: id_t,
    info: *mut siginfo_t,
    options: c_int,
) -> c_int {
    type F = unsafe extern "C" fn(idtype_t, id_t, *mut siginfo_t, c_int) -> c_int;
    let ret = call_real!(waitid: F, (idtype, id, info, options), -1);
    // WNOWAIT leaves the child reapable: it is reported when really reaped.
    if ret == 0 && !info.is_null() && options & libc::WNOWAIT == 0 {
        // SAFETY: waitid succeeded and filled *info.
        let (pid, code, st) = unsafe { ((*info).si_pid(), (*info).si_code, (*info).si_status()) };
        let status = match code {
            libc::CLD_EXITED => Some(ExitStatus::Code(st)),
            libc::CLD_KILLED | libc::CLD_DUMPED => Some(ExitStatus::Signal(st)),
            _ => None,
        };
        if let Some(status) = status
            && pid > 0
        {
            record(|_| {
                emit_small(
                    &Event::ChildExit {
                        child: pid as u32,
                        status,
                    },
                    0,
                );
            });
        }
    }
    ret
}
