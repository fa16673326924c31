//! The pipe a forked child waits on until its parent has set tracing up,
//! so that the command runs no instruction untraced. Both the ptrace and
//! the eBPF backend start their command through one.

use std::io;

use libc::c_int;

pub struct Gate {
    fds: [c_int; 2],
}

impl Gate {
    pub fn new() -> io::Result<Gate> {
        let mut fds = [-1; 2];
        // SAFETY: pipe2 writes two fds into the array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Gate { fds })
    }

    /// In the forked child: blocks until the parent [`Gate::open`]s the
    /// gate. If the parent gave up instead (closed it, or died), returns
    /// EPERM: the caller must not exec untraced. Only system calls.
    pub fn wait(&self) -> Result<(), c_int> {
        let mut b = [0u8; 1];
        // SAFETY: closing our copy of the write end; reading one byte into
        // a local buffer.
        let n = unsafe {
            libc::close(self.fds[1]);
            loop {
                let n = libc::read(self.fds[0], b.as_mut_ptr().cast(), 1);
                if !(n < 0 && *libc::__errno_location() == libc::EINTR) {
                    break n;
                }
            }
        };
        if n == 1 { Ok(()) } else { Err(libc::EPERM) }
    }

    /// In the parent, once tracing is set up: lets the child go on.
    pub fn open(&self) -> io::Result<()> {
        // SAFETY: writing one byte from a local to our pipe.
        let n = unsafe { libc::write(self.fds[1], [1u8].as_ptr().cast(), 1) };
        if n == 1 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        for fd in self.fds {
            // SAFETY: closing our own pipe fds.
            unsafe { libc::close(fd) };
        }
    }
}
