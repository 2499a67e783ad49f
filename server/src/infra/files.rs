//! Copying a workdir or file mount of the API server's host into a node's
//! home on this host: folders recursively, links as links, files with their
//! modes. A FIFO in the tree is read like a file (its content is what its
//! writer writes until it closes it), without ever blocking a thread for
//! good: the copy gives up when its request is cancelled or when no writer
//! has finished within `FIFO_WAIT`. Sockets and devices are refused.

use std::{
    fs, io,
    io::{Read as _, Write as _},
    os::{
        fd::AsRawFd as _,
        unix::fs::{FileTypeExt as _, OpenOptionsExt as _},
    },
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

/// How long a FIFO in a file mount may keep its launch waiting for its writer.
pub const FIFO_WAIT: Duration = Duration::from_secs(300);
/// How often a copy waiting on a FIFO looks at its cancellation.
const FIFO_POLL_MS: i32 = 100;

/// A file destination as a path inside the node's home: `~/x` and relative
/// paths are accepted; other absolute paths are not (nodes of the local
/// infra share the host's file system).
pub fn node_relative_path(dest: &str) -> Result<PathBuf, String> {
    let relative = dest.strip_prefix("~/").unwrap_or(dest);
    if relative.starts_with('/') || relative.split('/').any(|part| part == "..") {
        return Err(format!(
            "file mount destination {dest:?}: the local infra places files under each node's home; \
             use a path like ~/data"
        ));
    }
    Ok(PathBuf::from(relative))
}

/// Copies a file or a folder (recursively, symlinks as links) to `dest`,
/// until `cancelled` is set.
pub fn copy_tree(source: &Path, dest: &Path, cancelled: &AtomicBool) -> io::Result<()> {
    let named = |err: io::Error| io::Error::new(err.kind(), format!("{}: {err}", source.display()));
    let meta = fs::symlink_metadata(source).map_err(named)?;
    let kind = meta.file_type();
    if kind.is_dir() {
        fs::create_dir_all(dest)?;
        for entry in fs::read_dir(source)? {
            let entry = entry?;
            copy_tree(&entry.path(), &dest.join(entry.file_name()), cancelled)?;
        }
        return Ok(());
    }
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent)?;
    }
    if kind.is_symlink() {
        let target = fs::read_link(source)?;
        let _ = fs::remove_file(dest);
        std::os::unix::fs::symlink(target, dest)?;
    } else if kind.is_fifo() {
        copy_fifo(source, dest, cancelled).map_err(named)?;
    } else if kind.is_file() {
        fs::copy(source, dest)?;
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is a socket or a device, not a file, folder, link or FIFO", source.display()),
        ));
    }
    Ok(())
}

/// Copies what a FIFO's writer writes, until it closes the FIFO. Opened
/// without blocking, and waited on in short polls.
fn copy_fifo(source: &Path, dest: &Path, cancelled: &AtomicBool) -> io::Result<()> {
    let mut fifo = fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(source)?;
    if !fifo.metadata()?.file_type().is_fifo() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "changed while it was being copied"));
    }
    let mut out = fs::File::create(dest)?;
    let deadline = Instant::now() + FIFO_WAIT;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        if cancelled.load(Ordering::Relaxed) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "the request was cancelled"));
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("a FIFO whose writer did not finish within {} s", FIFO_WAIT.as_secs()),
            ));
        }
        let mut poll = libc::pollfd { fd: fifo.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: poll on one descriptor that `fifo` keeps open.
        if unsafe { libc::poll(&mut poll, 1, FIFO_POLL_MS) } < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if poll.revents & libc::POLLIN != 0 {
            match fifo.read(&mut buffer) {
                Ok(0) => return Ok(()),
                Ok(n) => out.write_all(&buffer[..n])?,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
        } else if poll.revents & libc::POLLHUP != 0 {
            // A writer came and went, and nothing is left to read.
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fifo(path: &Path) {
        let name = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn destinations_outside_the_node_home_are_refused() {
        assert!(node_relative_path("~/data").is_ok());
        assert!(node_relative_path("data/x").is_ok());
        for bad in ["/etc/passwd", "~/../x", "a/../../b"] {
            assert!(node_relative_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_fifo_is_read_until_its_writer_closes_it() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("gate.fifo");
        fifo(&source);
        let writer = {
            let source = source.clone();
            std::thread::spawn(move || {
                fs::OpenOptions::new().write(true).open(source)?.write_all(b"through the pipe")
            })
        };
        copy_tree(&source, &dir.path().join("copy"), &AtomicBool::new(false)).unwrap();
        writer.join().unwrap().unwrap();
        assert_eq!(fs::read(dir.path().join("copy")).unwrap(), b"through the pipe");
    }

    #[test]
    fn a_fifo_nobody_writes_to_holds_no_thread_once_its_request_is_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("gate.fifo");
        fifo(&source);
        let cancelled = std::sync::Arc::new(AtomicBool::new(false));
        let copy = {
            let (cancelled, dest) = (cancelled.clone(), dir.path().join("copy"));
            std::thread::spawn(move || copy_tree(&source, &dest, &cancelled))
        };
        cancelled.store(true, Ordering::Relaxed);
        let err = copy.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Interrupted, "{err}");
    }

    #[test]
    fn sockets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let err = copy_tree(&socket, &dir.path().join("copy"), &AtomicBool::new(false)).unwrap_err();
        assert!(err.to_string().contains("not a file, folder, link or FIFO"), "{err}");
    }
}
