//! OCI whiteouts, and the final pass over directories.
//!
//! `.wh.NAME` removes NAME of lower layers; `.wh..wh..opq` empties its directory of
//! lower-layer content. Neither ever appears in the output, and neither touches what the
//! same layer wrote (see the comment in `whiteout`). After the last entry, directories get
//! their modes and mtimes, deepest first. Nothing here resolves a path outside the root:
//! directories are opened through `safe_path`, removals are `*at` calls on them.

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fchmod, fstat, futimens, Mode};

use super::fsops::remove_all;
use super::safe_path::Resolved;
use super::unpack::{DirMeta, Unpacker};
use super::{display_path, LayerError, OPAQUE_MARKER};

impl Unpacker {
    pub(super) fn whiteout(
        &mut self,
        parent: &[u8],
        name: &[u8],
        hidden: &[u8],
    ) -> Result<(), LayerError> {
        self.report.whiteouts += 1;
        let parent_fd = match self.open_dir(parent, OFlag::O_PATH) {
            Ok(fd) => fd,
            // Nothing below to hide.
            Err(LayerError::Entry { source, .. })
                if matches!(
                    source.raw_os_error().map(Errno::from_raw),
                    Some(Errno::ENOENT | Errno::ENOTDIR)
                ) =>
            {
                return Ok(())
            }
            Err(error) => return Err(error),
        };
        if self.rootless {
            let stat = fstat(&parent_fd).map_err(self.failed("stat directory"))?;
            if stat.st_mode & 0o700 != 0o700 {
                self.parent(parent)?;
            }
        }
        self.invalidate_cache();
        let mut child = parent.to_vec();
        if !child.is_empty() {
            child.push(b'/');
        }
        let prefix_len = child.len();
        if name == OPAQUE_MARKER {
            // Empty the directory of lower-layer content, keeping what this layer wrote.
            let listing = openat(
                &parent_fd,
                ".",
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(self.failed("open opaque directory"))?;
            let mut dir =
                nix::dir::Dir::from_fd(listing).map_err(self.failed("list opaque directory"))?;
            let mut names = Vec::new();
            for item in dir.iter() {
                let item = item.map_err(self.failed("list opaque directory"))?;
                let item_name = item.file_name().to_bytes();
                if item_name != b"." && item_name != b".." {
                    names.push(item_name.to_vec());
                }
            }
            for item_name in names {
                child.truncate(prefix_len);
                child.extend_from_slice(&item_name);
                if !self.written.contains(&child) {
                    remove_all(&parent_fd, &item_name, self.rootless)
                        .map_err(self.failed("remove under opaque directory"))?;
                }
            }
            return Ok(());
        }
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(self.hostile("malformed whiteout name"));
        }
        child.extend_from_slice(hidden);
        // A whiteout hides files of *lower* layers only. When the same layer also carries
        // an entry for this path earlier in the stream (tar order is arbitrary), that entry
        // is the layer's content and must survive: deleting it would make the result
        // depend on the order of the tar. So paths written by this layer are kept.
        if self.written.contains(&child) {
            return Ok(());
        }
        match remove_all(&parent_fd, hidden, self.rootless) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(errno) => Err(self.failed("apply whiteout")(errno)),
        }
    }

    /// Modes and times of directories, deepest first: a directory's mtime changes whenever
    /// a child is created in it, and a rootless unpack must not lock itself out of a
    /// subtree (mode 0555 or 0000) before it is done with it.
    pub(super) fn finish_dirs(&mut self) -> Result<(), LayerError> {
        let mut dirs: Vec<((u64, u64), DirMeta)> = self.dirs.drain().collect();
        // Paths are short: a crate for counting bytes would not pay for itself here.
        #[allow(clippy::naive_bytecount)]
        let depth = |path: &[u8]| {
            path.iter().filter(|&&b| b == b'/').count() + usize::from(!path.is_empty())
        };
        dirs.sort_by(|a, b| {
            depth(&b.1.path)
                .cmp(&depth(&a.1.path))
                .then(a.1.path.cmp(&b.1.path))
        });
        for (identity, meta) in dirs {
            self.last_entry = display_path(&meta.path);
            let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW;
            let fd = match self.root.open_dir(&meta.path, flags) {
                Ok(Resolved::Dir(fd)) => fd,
                // Replaced or removed later in the layer: nothing to finish.
                Ok(Resolved::Escapes) | Err(_) => continue,
            };
            let stat = fstat(&fd).map_err(self.failed("stat directory"))?;
            if (stat.st_dev, stat.st_ino) != identity {
                continue;
            }
            fchmod(&fd, Mode::from_bits_truncate(meta.mode)).map_err(self.failed("chmod"))?;
            futimens(&fd, &meta.atime, &meta.mtime).map_err(self.failed("set mtime"))?;
        }
        Ok(())
    }
}
