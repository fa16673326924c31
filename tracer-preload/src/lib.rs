//! `libroar_preload.so`: the LD_PRELOAD backend of roar.
//!
//! Loaded with `LD_PRELOAD` into every dynamically linked process of a run,
//! it interposes the libc functions programs use to open, rename, link,
//! remove and create files, to exec, spawn, exit and reap children, and
//! reports each call as a [`tracer_wire`] record.
//!
//! Design:
//! * **Activation.** An `.init_array` constructor reads `ROAR_TRACE_DIR`.
//!   Unset or empty: every hook passes straight through. Set: the process
//!   image opens its own stream file
//!   `$ROAR_TRACE_DIR/<pid>.<mono_ns>.<rand>.<boot>-<pidns>.rwt` and writes
//!   `ProcessStart` as record 0. `<boot>` (12 hex digits of the kernel boot id)
//!   and `<pidns>` (the pid namespace inode) say which pid numbering the pids
//!   in the stream belong to, so containers sharing one directory (standalone
//!   preload) are told apart; `<rand>` makes names unique even so. A `pthread_atfork` child handler
//!   gives each forked child a stream of its own, opened at its first
//!   record: a child that only execs a program the library loads into
//!   opens none (the new image reports itself).
//! * **Hooks.** Each hook resolves the real function once with
//!   `dlsym(RTLD_NEXT)` ([`real`]), calls it, and then — unless tracing is
//!   off or this thread is already inside a hook ([`Guard`]) — records the
//!   call and restores the `errno` the real call left.
//! * **No heap, no locks, no std I/O, no panics.** Records are encoded on
//!   the stack and copied into a shared mapping of the stream file at an
//!   offset reserved with a compare-and-swap ([`stream`]); all helper I/O is
//!   raw syscalls ([`sys`]) that cannot re-enter hooks or touch `errno`.
//! * **No fd.** The library holds no file descriptor while the program runs
//!   its own code (fds are opened close-on-exec inside the library and closed
//!   before it returns), so the program's fd table, fd numbers, `close`
//!   results and `RLIMIT_NOFILE` headroom are exactly what they are without
//!   it, and nothing the program does with fds can send a record into one of
//!   its files.
//! * **vfork.** A vfork child shares memory with its parent, so exec hooks
//!   record and clear the re-entry guard before calling the real exec, and
//!   the child appends to its parent's stream through the shared state.
//!
//! Limits: static binaries, raw `syscall()`, io_uring and libc-internal
//! calls are invisible (exec of a static binary is flagged); `execl*`
//! accept at most 64 arguments (beyond that the argument list is cut);
//! `exit` through `main` returning is seen via the `__libc_start_main` hook
//! only when the program is started through it.

#![allow(clippy::missing_safety_doc)]

use core::cell::Cell;
use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicPtr, Ordering};

mod content;
mod hooks;
mod path;
mod stream;
mod sys;

thread_local! {
    /// Set while this thread runs our recording code.
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Proof that this thread may record (tracing on, not re-entered).
/// Dropping it clears the per-thread flag.
pub struct Guard(());

impl Guard {
    pub fn enter() -> Option<Guard> {
        if !stream::ACTIVE.load(Ordering::Acquire) {
            return None;
        }
        IN_HOOK
            .try_with(|g| {
                if g.get() {
                    None
                } else {
                    g.set(true);
                    Some(Guard(()))
                }
            })
            .ok()
            .flatten()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = IN_HOOK.try_with(|g| g.set(false));
    }
}

/// Runs `f` with the errno of the real call, if this thread may record,
/// and restores that errno afterwards.
#[inline]
pub fn record(f: impl FnOnce(c_int)) {
    let Some(_g) = Guard::enter() else { return };
    let e = sys::Errno::save();
    f(e.get());
    e.restore();
}

/// `ret` as the wire's result: the value, or -errno on failure.
#[inline]
pub fn result(ret: c_int, errno: c_int) -> i32 {
    if ret < 0 { -errno } else { ret }
}

/// A lazily resolved `dlsym(RTLD_NEXT, name)`.
pub struct Real {
    name: &'static [u8],
    ptr: AtomicPtr<c_void>,
}

impl Real {
    pub const fn new(name: &'static [u8]) -> Self {
        Real {
            name,
            ptr: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// The next definition of the symbol as an address.
    pub fn addr(&self) -> *mut c_void {
        let p = self.ptr.load(Ordering::Relaxed);
        if !p.is_null() {
            return p;
        }
        // SAFETY: name is a NUL-terminated static string.
        let p = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr().cast()) };
        self.ptr.store(p, Ordering::Relaxed);
        p
    }

    /// The next definition as function type `F`.
    ///
    /// # Safety
    /// `F` must be the function-pointer type of the real symbol.
    pub unsafe fn get<F: Copy>(&self) -> Option<F> {
        let p = self.addr();
        if p.is_null() || size_of::<F>() != size_of::<*mut c_void>() {
            return None;
        }
        // SAFETY: F is a function pointer of the symbol's type (caller).
        Some(unsafe { core::mem::transmute_copy::<*mut c_void, F>(&p) })
    }
}

/// Declares one [`Real`] per hooked symbol plus `resolve_all`.
macro_rules! real_symbols {
    ($($name:ident),* $(,)?) => {
        /// The real libc functions behind our hooks.
        #[allow(non_upper_case_globals)]
        pub mod real {
            use super::Real;
            $(pub static $name: Real = Real::new(concat!(stringify!($name), "\0").as_bytes());)*
            /// Resolves every symbol now, so hooks running in a vfork child
            /// need not call into the dynamic loader.
            pub fn resolve_all() {
                $($name.addr();)*
            }
        }
    };
}

real_symbols!(
    open,
    open64,
    openat,
    openat64,
    __open_2,
    __open64_2,
    __openat_2,
    __openat64_2,
    creat,
    creat64,
    mkstemp,
    mkstemp64,
    mkostemp,
    mkostemp64,
    mkstemps,
    mkstemps64,
    mkostemps,
    mkostemps64,
    fopen,
    fopen64,
    freopen,
    freopen64,
    rename,
    renameat,
    renameat2,
    link,
    linkat,
    symlink,
    symlinkat,
    unlink,
    unlinkat,
    remove,
    truncate,
    truncate64,
    ftruncate,
    ftruncate64,
    mkdir,
    mkdirat,
    rmdir,
    chdir,
    fchdir,
    chroot,
    unshare,
    setns,
    execve,
    execv,
    execvp,
    execvpe,
    fexecve,
    execveat,
    posix_spawn,
    posix_spawnp,
    exit,
    _exit,
    _Exit,
    wait,
    waitpid,
    wait4,
    wait3,
    waitid,
    __libc_start_main,
);

/// glibc calls `.init_array` entries with (argc, argv, envp).
type InitFn = unsafe extern "C" fn(c_int, *const *const c_char, *const *const c_char);

#[used]
#[unsafe(link_section = ".init_array")]
static CONSTRUCTOR: InitFn = constructor;

unsafe extern "C" fn constructor(
    argc: c_int,
    argv: *const *const c_char,
    _envp: *const *const c_char,
) {
    let e = sys::Errno::save();
    // SAFETY: getenv with a NUL-terminated name; the loader runs
    // constructors before the program can modify the environment.
    let dir = unsafe { libc::getenv(c"ROAR_TRACE_DIR".as_ptr()) };
    // SAFETY: getenv returns null or a C string.
    let dir = unsafe { sys::cstr(dir, 8192) };
    if !dir.is_empty() {
        real::resolve_all();
        content::init(dir);
        // SAFETY: the constructor runs once, before hooks see ACTIVE.
        if unsafe { stream::init(dir, argc, argv) } {
            // SAFETY: registering a plain function as the child handler.
            unsafe { libc::pthread_atfork(Some(atfork_prepare), None, Some(atfork_child)) };
        }
    }
    e.restore();
}

/// Runs after the program's own destructors and atexit handlers.
#[used]
#[unsafe(link_section = ".fini_array")]
static DESTRUCTOR: unsafe extern "C" fn() = destructor;

unsafe extern "C" fn destructor() {
    stream::seal();
}

unsafe extern "C" fn atfork_prepare() {
    let e = sys::Errno::save();
    stream::before_fork();
    e.restore();
}

unsafe extern "C" fn atfork_child() {
    let e = sys::Errno::save();
    stream::after_fork_child();
    e.restore();
}
