//! A pseudo-terminal for the command (`run -t`): the caller's process opens it, hands the
//! slave down to the command as [`crate::spec::STDIN_FD`] (which makes it stdin, stdout,
//! stderr and controlling terminal, see `process.rs`), and relays between the master and
//! its own stdin and stdout. The command never holds one of the caller's descriptors: only
//! a terminal of its own, whose input it may also write to (TIOCSTI) without reaching the
//! caller's.
//!
//! Order: open (with the caller's window size), spawn the sandbox with the slave, drop the
//! caller's slave, start the relays; when the sandbox is done, wait for the output relay
//! (it ends when the last slave descriptor closes), then restore the caller's terminal.

use nix::sys::termios::{self, SetArg, Termios};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::thread::JoinHandle;

/// The open pseudo-terminal and, once started, its relays.
pub struct Terminal {
    master: OwnedFd,
    /// The slave, until it was passed to the sandbox.
    slave: Option<OwnedFd>,
    output: Option<JoinHandle<()>>,
    /// The caller's terminal settings, restored on drop.
    saved: Option<Termios>,
}

impl Terminal {
    /// Opens a pseudo-terminal the size of the caller's (when stdout is one). Both ends are
    /// close-on-exec: only the copy put at STDIN_FD reaches the sandbox.
    pub fn open() -> std::io::Result<Terminal> {
        let size = window_size();
        let pty = nix::pty::openpty(size.as_ref(), None)?;
        for fd in [&pty.master, &pty.slave] {
            nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )?;
        }
        Ok(Terminal {
            master: pty.master,
            slave: Some(pty.slave),
            output: None,
            saved: None,
        })
    }

    /// The slave's descriptor number, for the child's `dup2` before it execs.
    pub fn slave_raw(&self) -> Option<i32> {
        self.slave.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// After the sandbox started: drops our slave (so that the output ends with the
    /// sandbox) and starts the relays. With `input` (`-i`) our stdin is relayed too, and
    /// our terminal, if stdin is one, is put in raw mode: keys go to the command's terminal
    /// as they are typed, ^C included.
    pub fn start(&mut self, input: bool) -> std::io::Result<()> {
        self.slave = None;
        let stdin = std::io::stdin();
        if let Some(saved) = input
            .then(|| termios::tcgetattr(stdin.as_fd()).ok())
            .flatten()
        {
            let mut raw = saved.clone();
            termios::cfmakeraw(&mut raw);
            termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)?;
            self.saved = Some(saved);
        }
        let mut reader = std::fs::File::from(self.master.try_clone()?);
        self.output = Some(std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            let mut stdout = std::io::stdout();
            // EIO once every slave descriptor is closed: the command and its sandbox ended.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || stdout.write_all(&buf[..n]).is_err() {
                    break;
                }
                let _ = stdout.flush();
            }
        }));
        if input {
            let mut writer = std::fs::File::from(self.master.try_clone()?);
            // Detached: it blocks on our stdin, and ends with the process at the latest.
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut std::io::stdin().lock(), &mut writer);
            });
        }
        Ok(())
    }

    /// Waits until the command's output is all written out.
    pub fn finish(&mut self) {
        if let Some(output) = self.output.take() {
            let _ = output.join();
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Some(saved) = self.saved.take() {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &saved);
        }
    }
}

/// The caller's window size, when its stdout is a terminal.
fn window_size() -> Option<nix::pty::Winsize> {
    let mut size = nix::pty::Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into `size`, which lives for the call.
    let ok =
        unsafe { libc::ioctl(std::io::stdout().as_raw_fd(), libc::TIOCGWINSZ, &mut size) } == 0;
    ok.then_some(size)
}
