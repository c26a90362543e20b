//! The system calls the in-namespace setup makes, behind the [`Syscall`] trait: a real
//! implementation ([`LinuxSyscall`]) and a recording one ([`RecordingSyscall`]) that lets the
//! ordering logic (namespaces, id maps, mounts, `pivot_root`) be tested without privileges.
//! This module only translates calls; it must not decide what to call or in which order.

use crate::inroot::{InRoot, Make};
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};

/// A failed system call, with the call's name and the path it was about.
#[derive(Debug, thiserror::Error)]
#[error("{call}({}) failed", path.display())]
pub struct SyscallError {
    pub call: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl SyscallError {
    fn new(call: &'static str, path: &Path, source: impl Into<io::Error>) -> Self {
        SyscallError {
            call,
            path: path.to_path_buf(),
            source: source.into(),
        }
    }

    /// The OS error number, when there is one.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

pub type Result<T> = std::result::Result<T, SyscallError>;

/// The calls the sandbox setup makes inside its namespaces.
pub trait Syscall {
    fn unshare(&self, flags: CloneFlags) -> Result<()>;
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()>;
    fn umount2(&self, target: &Path, flags: MntFlags) -> Result<()>;
    /// `pivot_root(new_root, put_old)`.
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<()>;
    fn chdir(&self, path: &Path) -> Result<()>;
    /// Creates a directory and its missing parents.
    fn mkdir_all(&self, path: &Path, mode: u32) -> Result<()>;
    /// `inner` (absolute, inside the sandbox) resolved under `root` without leaving it,
    /// made as `make` says where missing (see [`crate::inroot`]).
    fn resolve(&self, root: &Path, inner: &Path, make: Make) -> Result<InRoot>;
    fn symlink(&self, target: &Path, link: &Path) -> Result<()>;
    fn write_file(&self, path: &Path, data: &[u8]) -> Result<()>;
    fn sethostname(&self, name: &str) -> Result<()>;
    /// Brings the loopback interface of the current network namespace up.
    fn loopback_up(&self) -> Result<()>;
    /// The per-mount flags of the mount holding `path` (`statvfs`), as mount flags. A
    /// remount inside a user namespace must keep the flags the kernel locked.
    fn mount_flags(&self, path: &Path) -> Result<MsFlags>;
}

/// The real system calls.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSyscall;

impl Syscall for LinuxSyscall {
    fn unshare(&self, flags: CloneFlags) -> Result<()> {
        nix::sched::unshare(flags).map_err(|e| SyscallError::new("unshare", Path::new(""), e))
    }

    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()> {
        nix::mount::mount(source, target, fstype, flags, data)
            .map_err(|e| SyscallError::new("mount", target, e))
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> Result<()> {
        nix::mount::umount2(target, flags).map_err(|e| SyscallError::new("umount2", target, e))
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<()> {
        nix::unistd::pivot_root(new_root, put_old)
            .map_err(|e| SyscallError::new("pivot_root", new_root, e))
    }

    fn chdir(&self, path: &Path) -> Result<()> {
        nix::unistd::chdir(path).map_err(|e| SyscallError::new("chdir", path, e))
    }

    fn mkdir_all(&self, path: &Path, mode: u32) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)
            .map_err(|e| SyscallError::new("mkdir", path, e))
    }

    fn resolve(&self, root: &Path, inner: &Path, make: Make) -> Result<InRoot> {
        crate::inroot::resolve(root, inner, make)
            .map_err(|e| SyscallError::new("resolve inside the root", inner, e))
    }

    fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        std::os::unix::fs::symlink(target, link).map_err(|e| SyscallError::new("symlink", link, e))
    }

    fn write_file(&self, path: &Path, data: &[u8]) -> Result<()> {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| f.write_all(data))
            .map_err(|e| SyscallError::new("write", path, e))
    }

    fn sethostname(&self, name: &str) -> Result<()> {
        nix::unistd::sethostname(name)
            .map_err(|e| SyscallError::new("sethostname", Path::new(name), e))
    }

    fn loopback_up(&self) -> Result<()> {
        let lo = Path::new("lo");
        // SAFETY: a plain datagram socket; the returned fd is owned by `sock` below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(SyscallError::new("socket", lo, io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        use std::os::fd::AsRawFd;
        // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        // SAFETY: SIOCGIFFLAGS reads the interface named in `req` and fills `ifru_flags`;
        // `req` lives across the call.
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
            return Err(SyscallError::new(
                "ioctl(SIOCGIFFLAGS)",
                lo,
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: the union member was just filled by SIOCGIFFLAGS.
        unsafe {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        }
        // SAFETY: as above, `req` names `lo` and carries the new flags.
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
            return Err(SyscallError::new(
                "ioctl(SIOCSIFFLAGS)",
                lo,
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    fn mount_flags(&self, path: &Path) -> Result<MsFlags> {
        use nix::sys::statvfs::FsFlags;
        let st =
            nix::sys::statvfs::statvfs(path).map_err(|e| SyscallError::new("statvfs", path, e))?;
        let f = st.flags();
        let mut out = MsFlags::empty();
        for (fs, ms) in [
            (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if f.contains(fs) {
                out |= ms;
            }
        }
        Ok(out)
    }
}

/// Records every call as one line of text, in order, and fails the calls whose line starts
/// with one of `failing` (with `EPERM`), so fallbacks can be tested too.
#[derive(Debug, Default)]
pub struct RecordingSyscall {
    pub calls: RefCell<Vec<String>>,
    pub failing: Vec<String>,
}

impl RecordingSyscall {
    pub fn failing(prefixes: &[&str]) -> Self {
        RecordingSyscall {
            calls: RefCell::new(Vec::new()),
            failing: prefixes
                .iter()
                .map(std::string::ToString::to_string)
                .collect(),
        }
    }

    /// The recorded calls.
    pub fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    /// The index of the first call starting with `prefix`; panics when there is none.
    pub fn position(&self, prefix: &str) -> usize {
        self.calls
            .borrow()
            .iter()
            .position(|c| c.starts_with(prefix))
            .unwrap_or_else(|| panic!("no call starting with {prefix:?} in {:#?}", self.calls()))
    }

    fn record(&self, call: &'static str, line: String) -> Result<()> {
        let fail = self.failing.iter().any(|p| line.starts_with(p.as_str()));
        self.calls.borrow_mut().push(line.clone());
        if fail {
            return Err(SyscallError::new(
                call,
                Path::new(&line),
                io::Error::from_raw_os_error(libc::EPERM),
            ));
        }
        Ok(())
    }
}

impl Syscall for RecordingSyscall {
    fn unshare(&self, flags: CloneFlags) -> Result<()> {
        self.record("unshare", format!("unshare {flags:?}"))
    }

    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()> {
        self.record(
            "mount",
            format!(
                "mount {} {} {} {:?} {}",
                fstype.unwrap_or("-"),
                source.map_or("-".into(), |s| s.display().to_string()),
                target.display(),
                flags,
                data.unwrap_or("-"),
            ),
        )
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> Result<()> {
        self.record("umount2", format!("umount2 {} {flags:?}", target.display()))
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<()> {
        self.record(
            "pivot_root",
            format!("pivot_root {} {}", new_root.display(), put_old.display()),
        )
    }

    fn chdir(&self, path: &Path) -> Result<()> {
        self.record("chdir", format!("chdir {}", path.display()))
    }

    fn mkdir_all(&self, path: &Path, mode: u32) -> Result<()> {
        self.record("mkdir", format!("mkdir {} {mode:o}", path.display()))
    }

    fn resolve(&self, root: &Path, inner: &Path, make: Make) -> Result<InRoot> {
        let path = root.join(inner.strip_prefix("/").unwrap_or(inner));
        self.record("resolve", format!("resolve {} {make:?}", path.display()))?;
        Ok(InRoot::recorded(
            path,
            inner.to_path_buf(),
            make != Make::File,
        ))
    }

    fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        self.record(
            "symlink",
            format!("symlink {} {}", target.display(), link.display()),
        )
    }

    fn write_file(&self, path: &Path, data: &[u8]) -> Result<()> {
        self.record(
            "write",
            format!("write {} {}", path.display(), String::from_utf8_lossy(data)),
        )
    }

    fn sethostname(&self, name: &str) -> Result<()> {
        self.record("sethostname", format!("sethostname {name}"))
    }

    fn loopback_up(&self) -> Result<()> {
        self.record("loopback_up", "loopback_up".into())
    }

    fn mount_flags(&self, path: &Path) -> Result<MsFlags> {
        self.record("statvfs", format!("statvfs {}", path.display()))?;
        Ok(MsFlags::MS_NOSUID | MsFlags::MS_NODEV)
    }
}
