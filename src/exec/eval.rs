//! Turning an `exec*` line into a command to run, sans I/O: variables
//! filled the way nginx-rtmp's `ngx_rtmp_eval` fills them, and shell-like
//! redirections (`>file`, `2>>file`, `<file`, `2>&1`) taken out of the
//! argument list.
//!
//! nginx-rtmp's rules, kept here:
//! - `$name` is a run of ASCII letters (`$name_720p` is `$name` then
//!   `_720p`); `${name}` ends at `}`; an unknown variable is empty;
//! - `\` makes the next character literal;
//! - each configured word is one argument, whatever its value contains:
//!   no shell runs unless the program is one.
//!
//! One difference, on purpose: nginx-rtmp decides whether an argument is a
//! redirection *after* filling its variables, so a client that publishes a
//! stream named `>/some/file` makes `$name` a redirection. Sluice decides on
//! the configured word, before any value is filled in.

/// One redirection of a child's standard stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    /// `[N]>path` or `[N]>>path` (append).
    Write { fd: u32, path: String, append: bool },
    /// `[N]<path`.
    Read { fd: u32, path: String },
    /// `N>&M`: fd N goes where fd M goes.
    Dup { fd: u32, to: u32 },
}

/// A command ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub program: String,
    pub args: Vec<String>,
    pub redirects: Vec<Redirect>,
}

/// Fills the variables of `template`; `get` answers a variable's value.
pub fn fill(template: &str, get: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '$' => {
                let mut name = String::new();
                if chars.peek() == Some(&'{') {
                    chars.next();
                    let mut closed = false;
                    for n in chars.by_ref() {
                        if n == '}' {
                            closed = true;
                            break;
                        }
                        name.push(n);
                    }
                    if !closed {
                        // nginx-rtmp drops an unterminated `${...`.
                        continue;
                    }
                } else {
                    while let Some(&n) = chars.peek() {
                        if !n.is_ascii_alphabetic() {
                            break;
                        }
                        name.push(n);
                        chars.next();
                    }
                }
                if let Some(v) = get(&name) {
                    out.push_str(&v);
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// A configured word that is a redirection, its path still a template.
fn redirect_of(word: &str) -> Option<Redirect> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let rest = &word[digits..];
    let op = rest.chars().next()?;
    if op != '>' && op != '<' {
        return None;
    }
    let fd = if digits == 0 {
        u32::from(op == '>')
    } else {
        word[..digits].parse().ok()?
    };
    let mut rest = &rest[1..];
    let append = op == '>' && rest.starts_with('>');
    if append {
        rest = &rest[1..];
    }
    if let Some(to) = rest.strip_prefix('&') {
        return Some(Redirect::Dup {
            fd,
            to: to.parse().ok()?,
        });
    }
    Some(if op == '<' {
        Redirect::Read {
            fd,
            path: rest.to_owned(),
        }
    } else {
        Redirect::Write {
            fd,
            path: rest.to_owned(),
            append,
        }
    })
}

/// Prepares `program args...` with its variables filled by `get`.
pub fn prepare(program: &str, args: &[String], get: &dyn Fn(&str) -> Option<String>) -> Prepared {
    let mut out = Prepared {
        program: program.to_owned(),
        args: Vec::with_capacity(args.len()),
        redirects: Vec::new(),
    };
    for a in args {
        match redirect_of(a) {
            Some(Redirect::Write { fd, path, append }) => out.redirects.push(Redirect::Write {
                fd,
                path: fill(&path, get),
                append,
            }),
            Some(Redirect::Read { fd, path }) => out.redirects.push(Redirect::Read {
                fd,
                path: fill(&path, get),
            }),
            Some(d) => out.redirects.push(d),
            None => out.args.push(fill(a, get)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(k: &str) -> Option<String> {
        match k {
            "name" => Some("cam".into()),
            "app" => Some("live".into()),
            _ => None,
        }
    }

    #[test]
    fn variables_as_nginx_rtmp_fills_them() {
        assert_eq!(
            fill("rtmp://h/hls/$name_720p", &vars),
            "rtmp://h/hls/cam_720p"
        );
        assert_eq!(fill("${name}x/$app/$nope.", &vars), "camx/live/.");
        assert_eq!(fill("a\\$name b\\\\", &vars), "a$name b\\");
        assert_eq!(fill("$name$app", &vars), "camlive");
        assert_eq!(fill("x${name", &vars), "x");
        assert_eq!(fill("$", &vars), "");
    }

    #[test]
    fn redirections_leave_the_arguments() {
        let args: Vec<String> = [
            "-i",
            "rtmp://h/$app/$name",
            "2>>/tmp/$name.log",
            ">/dev/null",
            "2>&1",
            "<in",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let p = prepare("ffmpeg", &args, &vars);
        assert_eq!(p.args, ["-i", "rtmp://h/live/cam"]);
        assert_eq!(
            p.redirects,
            [
                Redirect::Write {
                    fd: 2,
                    path: "/tmp/cam.log".into(),
                    append: true
                },
                Redirect::Write {
                    fd: 1,
                    path: "/dev/null".into(),
                    append: false
                },
                Redirect::Dup { fd: 2, to: 1 },
                Redirect::Read {
                    fd: 0,
                    path: "in".into()
                },
            ]
        );
    }

    #[test]
    fn a_value_never_becomes_a_redirection() {
        let evil = |k: &str| (k == "name").then(|| ">/etc/x".to_owned());
        let p = prepare("echo", &["$name".to_owned()], &evil);
        assert_eq!(p.args, [">/etc/x"]);
        assert!(p.redirects.is_empty());
    }
}
