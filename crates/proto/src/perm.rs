//! HDFS-style permission bits.

/// Read, write and execute bits of one class (owner, group or other).
pub const READ: u16 = 4;
pub const WRITE: u16 = 2;
pub const EXECUTE: u16 = 1;

/// The sticky bit: in a directory, only an entry's owner (or the directory's
/// owner, or the superuser) may delete or rename it.
pub const STICKY: u16 = 0o1000;

/// Default umask applied to new files and directories (as HDFS's 022).
pub const UMASK: u16 = 0o022;

/// Marks the mode of a `Mkdirs` or `Create` request as final: applied as
/// given, without [`UMASK`]. Hadoop's clients (WebHDFS, HDFS RPC) apply
/// their own umask and send the result, which the namespace must not mask
/// again; tdfs's own client sends unmasked modes. Outside the mode bits
/// (at most 0o1777), so no real mode carries it by accident.
pub const AS_GIVEN: u16 = 0x8000;

/// The mode a new file or directory gets: `requested` (or `default`) with
/// the umask applied, unless the request marked it [`AS_GIVEN`].
pub fn new_inode_mode(requested: Option<u16>, default: u16) -> u16 {
    match requested {
        Some(m) if m & AS_GIVEN != 0 => m & 0o1777,
        m => m.unwrap_or(default) & !UMASK & 0o1777,
    }
}

/// Formats mode bits like `drwxr-xr-x`.
pub fn format_mode(is_dir: bool, mode: u16) -> String {
    let mut s = String::with_capacity(10);
    s.push(if is_dir { 'd' } else { '-' });
    for shift in [6u16, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & READ != 0 { 'r' } else { '-' });
        s.push(if bits & WRITE != 0 { 'w' } else { '-' });
        let x = bits & EXECUTE != 0;
        if shift == 0 && mode & STICKY != 0 {
            s.push(if x { 't' } else { 'T' });
        } else {
            s.push(if x { 'x' } else { '-' });
        }
    }
    s
}

/// Names an access for error messages, as HDFS does (`WRITE`, `READ_EXECUTE`).
pub fn access_name(bits: u16) -> &'static str {
    match bits & 7 {
        0 => "NONE",
        1 => "EXECUTE",
        2 => "WRITE",
        3 => "WRITE_EXECUTE",
        4 => "READ",
        5 => "READ_EXECUTE",
        6 => "READ_WRITE",
        _ => "ALL",
    }
}

/// Parses an octal mode (`755`, `1777`) or a symbolic one relative to `current`
/// (`u+x`, `go-w`, `a=r`, comma-separated).
pub fn parse_mode(spec: &str, current: u16, is_dir: bool) -> Result<u16, String> {
    if !spec.is_empty() && spec.chars().all(|c| c.is_ascii_digit()) {
        let v = u16::from_str_radix(spec, 8).map_err(|_| format!("bad octal mode {spec:?}"))?;
        if v > 0o1777 {
            return Err(format!("mode {spec} is out of range"));
        }
        return Ok(v);
    }
    let mut mode = current;
    for clause in spec.split(',') {
        let op_at = clause
            .find(['+', '-', '='])
            .ok_or_else(|| format!("bad symbolic mode {spec:?}"))?;
        let (who, rest) = clause.split_at(op_at);
        let op = rest.as_bytes()[0];
        let perms = &rest[1..];
        let mut mask: u16 = 0;
        let who = if who.is_empty() { "a" } else { who };
        for w in who.chars() {
            mask |= match w {
                'u' => 0o700,
                'g' => 0o070,
                'o' => 0o007,
                'a' => 0o777,
                _ => return Err(format!("bad symbolic mode {spec:?}")),
            };
        }
        let mut bits: u16 = 0;
        let mut sticky = false;
        for p in perms.chars() {
            bits |= match p {
                'r' => 0o444,
                'w' => 0o222,
                'x' => 0o111,
                'X' if is_dir || current & 0o111 != 0 => 0o111,
                'X' => 0,
                't' => {
                    sticky = true;
                    0
                }
                _ => return Err(format!("bad symbolic mode {spec:?}")),
            };
        }
        let bits = bits & mask;
        match op {
            b'+' => {
                mode |= bits;
                if sticky {
                    mode |= STICKY;
                }
            }
            b'-' => {
                mode &= !bits;
                if sticky {
                    mode &= !STICKY;
                }
            }
            _ => {
                mode = (mode & !mask) | bits;
                if sticky {
                    mode |= STICKY;
                }
            }
        }
    }
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_modes() {
        assert_eq!(format_mode(true, 0o755), "drwxr-xr-x");
        assert_eq!(format_mode(false, 0o644), "-rw-r--r--");
        assert_eq!(format_mode(true, 0o1777), "drwxrwxrwt");
        assert_eq!(parse_mode("700", 0, false).unwrap(), 0o700);
        assert_eq!(parse_mode("u+x", 0o644, false).unwrap(), 0o744);
        assert_eq!(parse_mode("go-r", 0o644, false).unwrap(), 0o600);
        assert_eq!(parse_mode("a=rx,u+w", 0, true).unwrap(), 0o755);
        assert!(parse_mode("q+x", 0, false).is_err());
        assert!(parse_mode("9999", 0, false).is_err());
    }

    #[test]
    fn new_modes_are_masked_unless_given_as_final() {
        assert_eq!(new_inode_mode(None, 0o777), 0o755);
        assert_eq!(new_inode_mode(Some(0o777), 0o666), 0o755);
        assert_eq!(new_inode_mode(Some(0o777 | AS_GIVEN), 0o666), 0o777);
        assert_eq!(new_inode_mode(Some(0o1770 | AS_GIVEN), 0o666), 0o1770);
    }
}
