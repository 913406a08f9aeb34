//! The shell scripts `SshHost` runs on the server. Each is a constant run as `sh -c SCRIPT sh ARGS...`: the
//! arguments (paths) are data in `$1`, `$2`…, never parsed as code.
//!
//! They use POSIX `sh` and POSIX utilities (`dirname`, `mkdir`, `tee`, `cksum`, `wc`, `chmod`, `ln`, `mv`,
//! `rm`, `mkfifo`, `test`, `printf`, `kill`) plus exactly three that POSIX lacks, present in GNU coreutils, BusyBox and
//! the BSDs alike:
//! - `mktemp` (and `mktemp -d`): temporary names the server chooses at random and creates exclusively
//!   (`O_EXCL`, mode 600), so a name cannot be guessed and planted in advance (as a symlink, say);
//! - `sync FILE`: flushes one file before it is renamed into place (coreutils ≥ 8.24, BusyBox); where it
//!   takes no argument, a whole-system `sync` is used instead;
//! - `stat -f -c FORMAT`: the filesystem's sizes and inodes for `disk_usage` (coreutils, BusyBox).
//!
//! Every script that creates a temporary removes it on any exit but success (an `EXIT` trap), including
//! when it is stopped: `TERM` (what [`super::process`] sends first), `HUP`, `INT`, and `PIPE` (the client
//! went away) make it exit through that trap. Outcomes are fixed exit codes ([`super::exec::status`]).

/// Receives the data from stdin into a new temporary file next to `$2`, named `$1` plus a random suffix,
/// with mode `$3`; with `$4 = 1` refuses an existing `$2` (an early answer: the final check is the
/// link in [`PLACE`]). Missing parent directories are made first, the new ones 0700 (the `Host::put_file`
/// contract; exit 48 when they cannot be). Prints the suffix on the first line, as soon as the file exists, then
/// `CKSUM STREAM_SIZE FILE_SIZE`.
pub(crate) const RECEIVE: &str = r#"prefix=$1 dst=$2 mode=$3 new=$4
dir=$(dirname -- "$dst")
if [ ! -d "$dir" ]; then
  err=$( (umask 077 && mkdir -p -- "$dir") 2>&1 ) || { printf 'cannot create directory %s: %s\n' "$dir" "$err" >&2; exit 48; }
fi
if [ "$new" = 1 ] && { [ -e "$dst" ] || [ -L "$dst" ]; }; then echo "file exists: $dst" >&2; exit 47; fi
[ -w "$dir" ] || { echo "cannot write in $dir" >&2; exit 46; }
tmp=$(mktemp -- "${prefix}XXXXXXXXXX") || exit 1
trap 'rm -f -- "$tmp"' EXIT
trap 'exit 143' TERM HUP INT PIPE
printf '%s\n' "${tmp#"$prefix"}"
sum=$(tee -- "$tmp" | cksum) || exit 1
chmod "$mode" "$tmp" || exit 1
sync -- "$tmp" 2>/dev/null || sync
size=$(wc -c < "$tmp") || exit 1
printf '%s %s\n' "$sum" "$size" || exit 1
trap - EXIT"#;

/// Moves the verified temporary file `$1` into place at `$2`; with `$3 = 1` only if `$2` does not exist
/// (a hard link: the kernel checks and creates in one step). The temporary is gone afterwards, whatever
/// happened.
pub(crate) const PLACE: &str = r#"trap 'rm -f -- "$1"' EXIT
trap 'exit 143' TERM HUP INT PIPE
if [ -d "$2" ]; then echo "is a directory: $2" >&2; exit 45; fi
if [ "$3" = 1 ]; then
  if ! ln -- "$1" "$2" 2>/dev/null; then
    if [ -e "$2" ] || [ -L "$2" ]; then echo "file exists: $2" >&2; exit 47; fi
    echo "cannot create $2" >&2; exit 1
  fi
else
  mv -f -- "$1" "$2" || exit 1
fi
sync -- "$(dirname -- "$2")" 2>/dev/null || true"#;

/// Removes a temporary file left by a failed transfer.
pub(crate) const DISCARD: &str = r#"rm -f -- "$1""#;

/// Sends `K`, then the file, while a `cksum` fed through a FIFO (in a private directory of its own)
/// prints the file's checksum on stderr: the checksum is of exactly the bytes sent.
pub(crate) const SEND: &str = r#"f=$1
[ -e "$f" ] || { echo "no such file: $f" >&2; exit 44; }
[ -d "$f" ] && { echo "is a directory: $f" >&2; exit 45; }
[ -r "$f" ] || { echo "not readable: $f" >&2; exit 46; }
d=$(mktemp -d) || exit 1
mkfifo -m 600 "$d/sum" || { rm -rf -- "$d"; exit 1; }
cksum < "$d/sum" >&2 &
printf K
tee -- "$d/sum" < "$f"
wait $!
rc=$?
rm -rf -- "$d"
exit $rc"#;

/// Renames `$1` to `$2` (replacing a file, never moving into a directory).
pub(crate) const RENAME: &str = r#"[ -e "$1" ] || [ -L "$1" ] || { echo "no such file: $1" >&2; exit 44; }
if [ -d "$2" ]; then echo "is a directory: $2" >&2; exit 45; fi
mv -f -- "$1" "$2" || exit 1
sync -- "$(dirname -- "$2")" 2>/dev/null || true"#;

/// Removes the file `$1` (not a directory).
pub(crate) const REMOVE: &str = r#"[ -e "$1" ] || [ -L "$1" ] || { echo "no such file: $1" >&2; exit 44; }
[ -d "$1" ] && [ ! -L "$1" ] && { echo "is a directory: $1" >&2; exit 45; }
rm -f -- "$1""#;

/// Prints `BLOCK_SIZE BLOCKS AVAILABLE INODES FREE_INODES` for the filesystem holding `$1`.
pub(crate) const DISK_USAGE: &str = r#"[ -e "$1" ] || { echo "no such path: $1" >&2; exit 44; }
stat -f -c '%S %b %a %c %d' -- "$1""#;

/// Signals a process group of the same user (`$1`: TERM or KILL, `$2`: the group), to stop a program
/// (see [`super::process`]). A group already gone is not an error.
pub(crate) const KILL_GROUP: &str = r#"kill -s "$1" -- "-$2" 2>/dev/null; :"#;
