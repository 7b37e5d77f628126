//! `berth cp`'s arguments, checked: which side is the container's, and its path. The console
//! checks them before connecting; the agent checks the path fields of the three `cp` calls
//! with the same rules.

use crate::ValidationError;
use crate::error::quoted;
use crate::spec::validate_reference;
use std::path::PathBuf;

/// The longest container path accepted (Linux's PATH_MAX).
pub const MAX_PATH_LEN: usize = 4096;

/// One side of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A path on this machine.
    Local(PathBuf),
    /// `-`: a tar archive on stdin or stdout.
    Stdio,
    /// `NAME:PATH`.
    Container { container: String, path: String },
}

/// Which way a copy goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Direction {
    /// Out of a container: `NAME:PATH LOCAL`.
    From {
        container: String,
        path: String,
        to: Endpoint,
    },
    /// Into a container: `LOCAL NAME:PATH`.
    To {
        from: Endpoint,
        container: String,
        path: String,
    },
}

/// A path in a container: not empty, no NUL, at most [`MAX_PATH_LEN`] bytes. A relative path
/// is taken from `/`, as `docker cp` takes it; the path is returned that way.
pub fn container_path(field: &str, path: &str) -> Result<String, ValidationError> {
    let err = |m: String| Err(ValidationError::new(field, m));
    if path.is_empty() {
        return err("is empty: give a path in the container, such as NAME:/data".into());
    }
    if path.len() >= MAX_PATH_LEN {
        return err(format!(
            "is {} bytes long; less than {MAX_PATH_LEN}",
            path.len()
        ));
    }
    if path.contains('\0') {
        return err("contains a NUL byte".into());
    }
    Ok(if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    })
}

/// One argument of `berth cp`, as Docker splits it: a path that starts with `/` or `.`, or has
/// no `:`, is local (so `./a:b` is the local file `a:b`); `-` is stdin or stdout; otherwise
/// `NAME:PATH`.
pub fn endpoint(field: &str, arg: &str) -> Result<Endpoint, ValidationError> {
    if arg.is_empty() {
        return Err(ValidationError::new(field, "is empty"));
    }
    if arg == "-" {
        return Ok(Endpoint::Stdio);
    }
    if arg.starts_with('/') || arg.starts_with('.') {
        return Ok(Endpoint::Local(PathBuf::from(arg)));
    }
    let Some((container, path)) = arg.split_once(':') else {
        return Ok(Endpoint::Local(PathBuf::from(arg)));
    };
    validate_reference(field, container)?;
    Ok(Endpoint::Container {
        container: container.to_owned(),
        path: container_path(field, path)?,
    })
}

/// `SRC DEST`: exactly one of them is `NAME:PATH`.
pub fn direction(src: &str, dest: &str) -> Result<Direction, ValidationError> {
    match (endpoint("source", src)?, endpoint("destination", dest)?) {
        (Endpoint::Container { container, path }, to @ (Endpoint::Local(_) | Endpoint::Stdio)) => {
            Ok(Direction::From {
                container,
                path,
                to,
            })
        }
        (
            from @ (Endpoint::Local(_) | Endpoint::Stdio),
            Endpoint::Container { container, path },
        ) => Ok(Direction::To {
            from,
            container,
            path,
        }),
        (Endpoint::Container { .. }, Endpoint::Container { .. }) => Err(ValidationError::new(
            "destination",
            "copying between containers is not supported: copy to this machine, then on",
        )),
        (Endpoint::Stdio, Endpoint::Stdio) => Err(ValidationError::new(
            "destination",
            "`-` may be the source or the destination, not both",
        )),
        _ => Err(ValidationError::new(
            "destination",
            format!(
                "one of {} and {} must be a container path, NAME:PATH",
                quoted(src),
                quoted(dest)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_split_as_docker_splits_them() {
        assert_eq!(
            endpoint("source", "web:/etc/hosts"),
            Ok(Endpoint::Container {
                container: "web".into(),
                path: "/etc/hosts".into()
            })
        );
        assert_eq!(
            endpoint("source", "web:etc"),
            Ok(Endpoint::Container {
                container: "web".into(),
                path: "/etc".into()
            }),
            "a relative path is taken from /"
        );
        assert_eq!(
            endpoint("source", "./a:b"),
            Ok(Endpoint::Local("./a:b".into()))
        );
        assert_eq!(
            endpoint("source", "/tmp/x:y"),
            Ok(Endpoint::Local("/tmp/x:y".into()))
        );
        assert_eq!(
            endpoint("source", "notes.txt"),
            Ok(Endpoint::Local("notes.txt".into()))
        );
        assert_eq!(endpoint("source", "-"), Ok(Endpoint::Stdio));
    }

    #[test]
    fn bad_arguments_are_refused_naming_the_side() {
        for (src, dest, field, says) in [
            ("web:", "x", "source", "is empty"),
            ("x", "y", "destination", "must be a container path"),
            ("a:/x", "b:/y", "destination", "between containers"),
            ("-", "-", "destination", "not both"),
            ("", "web:/x", "source", "is empty"),
        ] {
            let e = direction(src, dest).expect_err(src);
            assert_eq!(e.field, field, "{src} {dest}: {e}");
            assert!(e.to_string().contains(says), "{src} {dest}: {e}");
        }
        let long = format!("web:/{}", "a".repeat(MAX_PATH_LEN));
        assert!(direction(&long, "x").is_err());
        assert!(container_path("path", "/a\0b").is_err());
    }

    #[test]
    fn one_side_is_the_container() {
        assert_eq!(
            direction("web:/data", "-"),
            Ok(Direction::From {
                container: "web".into(),
                path: "/data".into(),
                to: Endpoint::Stdio
            })
        );
        assert_eq!(
            direction("blob.bin", "web:/tmp/"),
            Ok(Direction::To {
                from: Endpoint::Local("blob.bin".into()),
                container: "web".into(),
                path: "/tmp/".into()
            })
        );
    }
}
