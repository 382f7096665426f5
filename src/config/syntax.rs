//! nginx configuration syntax: tokens, directives, blocks and `include`.
//!
//! This layer knows nothing of what directives mean; it produces a tree of
//! [`Directive`]s, each remembering the file and line it came from so that
//! every later error can name `FILE:LINE`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a directive was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    pub file: Arc<str>,
    pub line: usize,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

#[derive(Debug, Clone)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    /// `Some` for block directives (`rtmp { ... }`).
    pub block: Option<Vec<Directive>>,
    pub pos: Pos,
}

/// A configuration error with its location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {msg}")]
pub struct ConfigError {
    pub pos: Pos,
    pub msg: String,
}

pub fn err(pos: &Pos, msg: impl Into<String>) -> ConfigError {
    ConfigError {
        pos: pos.clone(),
        msg: msg.into(),
    }
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Semi,
    Open,
    Close,
}

fn tokenize(src: &str, file: &Arc<str>) -> Result<Vec<(Tok, usize)>, ConfigError> {
    let mut toks = Vec::new();
    let mut line = 1;
    let mut chars = src.chars().peekable();
    let pos = |line| Pos {
        file: file.clone(),
        line,
    };
    while let Some(&c) = chars.peek() {
        match c {
            '\n' => {
                line += 1;
                chars.next();
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            ';' => {
                toks.push((Tok::Semi, line));
                chars.next();
            }
            '{' => {
                toks.push((Tok::Open, line));
                chars.next();
            }
            '}' => {
                toks.push((Tok::Close, line));
                chars.next();
            }
            '"' | '\'' => {
                let start = line;
                chars.next();
                let mut w = String::new();
                loop {
                    match chars.next() {
                        None => {
                            return Err(err(
                                &pos(start),
                                "unexpected end of file, expecting closing quote",
                            ))
                        }
                        Some(q) if q == c => break,
                        Some('\\') => match chars.next() {
                            Some('n') => w.push('\n'),
                            Some('t') => w.push('\t'),
                            Some(o) => w.push(o),
                            None => {
                                return Err(err(
                                    &pos(start),
                                    "unexpected end of file in quoted string",
                                ))
                            }
                        },
                        Some(o) => {
                            if o == '\n' {
                                line += 1;
                            }
                            w.push(o)
                        }
                    }
                }
                toks.push((Tok::Word(w), start));
            }
            _ => {
                // As nginx reads a word: it ends at a space, `;` or `{`, but
                // not at the `{` of `${` (a variable such as `${VAR}` in a
                // templated config is one word), and a `}` inside a word is
                // part of it. `#` starts a comment only at a token's start.
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == ';' || (c == '{' && !w.ends_with('$')) {
                        break;
                    }
                    w.push(c);
                    chars.next();
                }
                toks.push((Tok::Word(w), line));
            }
        }
    }
    Ok(toks)
}

const MAX_INCLUDE_DEPTH: usize = 16;

/// Parses a configuration file, following `include` relative to `base_dir`
/// (the folder of the main file, as nginx uses its conf prefix).
pub fn parse_file(path: &Path) -> Result<Vec<Directive>, ConfigError> {
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let src = std::fs::read_to_string(path).map_err(|e| ConfigError {
        pos: Pos {
            file: path.display().to_string().into(),
            line: 0,
        },
        msg: format!("cannot read: {e}"),
    })?;
    parse_str(&src, &path.display().to_string(), &base, 0)
}

pub fn parse_str(
    src: &str,
    name: &str,
    base: &Path,
    depth: usize,
) -> Result<Vec<Directive>, ConfigError> {
    let file: Arc<str> = name.into();
    let toks = tokenize(src, &file)?;
    let mut i = 0;
    let tree = parse_block(&toks, &mut i, &file, true)?;
    expand(tree, base, depth, false)
}

/// Expands `include` at the top level and anywhere inside `rtmp {}`.
/// Blocks Sluice ignores (`http`, `events`...) keep theirs unexpanded, so an
/// nginx.conf that includes `/etc/nginx/mime.types` loads on any machine.
fn expand(
    tree: Vec<Directive>,
    base: &Path,
    depth: usize,
    in_rtmp: bool,
) -> Result<Vec<Directive>, ConfigError> {
    let mut out = Vec::new();
    for mut d in tree {
        if d.name == "include" && d.block.is_none() {
            let included = include(&d.args, &d.pos, base, depth)?;
            out.extend(expand(included, base, depth + 1, in_rtmp)?);
            continue;
        }
        if in_rtmp || d.name == "rtmp" {
            if let Some(b) = d.block.take() {
                d.block = Some(expand(b, base, depth, true)?);
            }
        }
        out.push(d);
    }
    Ok(out)
}

fn parse_block(
    toks: &[(Tok, usize)],
    i: &mut usize,
    file: &Arc<str>,
    top: bool,
) -> Result<Vec<Directive>, ConfigError> {
    let mut out = Vec::new();
    let pos = |line| Pos {
        file: file.clone(),
        line,
    };
    loop {
        let Some((tok, line)) = toks.get(*i) else {
            if top {
                return Ok(out);
            }
            let last = toks.last().map_or(1, |t| t.1);
            return Err(err(&pos(last), "unexpected end of file, expecting \"}\""));
        };
        *i += 1;
        let name = match tok {
            Tok::Close if !top => return Ok(out),
            Tok::Close => return Err(err(&pos(*line), "unexpected \"}\"")),
            Tok::Semi => return Err(err(&pos(*line), "unexpected \";\"")),
            Tok::Open => return Err(err(&pos(*line), "unexpected \"{\"")),
            Tok::Word(w) => w.clone(),
        };
        let mut args = Vec::new();
        loop {
            match toks.get(*i) {
                None => {
                    return Err(err(
                        &pos(*line),
                        format!("unexpected end of file after \"{name}\""),
                    ))
                }
                Some((Tok::Word(w), _)) => {
                    args.push(w.clone());
                    *i += 1;
                }
                Some((Tok::Semi, _)) => {
                    *i += 1;
                    out.push(Directive {
                        name,
                        args,
                        block: None,
                        pos: pos(*line),
                    });
                    break;
                }
                Some((Tok::Open, _)) => {
                    *i += 1;
                    let block = parse_block(toks, i, file, false)?;
                    out.push(Directive {
                        name,
                        args,
                        block: Some(block),
                        pos: pos(*line),
                    });
                    break;
                }
                Some((Tok::Close, l)) => {
                    return Err(err(&pos(*l), format!("unexpected \"}}\" after \"{name}\"")));
                }
            }
        }
    }
}

/// Reads the files of `include PATTERN;` (the last path component may
/// hold `*`), unexpanded.
fn include(
    args: &[String],
    pos: &Pos,
    base: &Path,
    depth: usize,
) -> Result<Vec<Directive>, ConfigError> {
    if args.len() != 1 {
        return Err(err(
            pos,
            "invalid number of arguments in \"include\" directive",
        ));
    }
    if depth >= MAX_INCLUDE_DEPTH {
        return Err(err(pos, "\"include\" nested too deeply (a loop?)"));
    }
    let path = base.join(&args[0]);
    let mut files: Vec<PathBuf> = Vec::new();
    let fname = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    if fname.contains('*') {
        let dir = path.parent().unwrap_or(base);
        let (pre, post) = fname.split_once('*').unwrap_or((&fname, ""));
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(pre) && n.ends_with(post) && n.len() >= pre.len() + post.len() {
                    files.push(e.path());
                }
            }
        }
        files.sort();
    } else {
        files.push(path);
    }
    let mut out = Vec::new();
    for f in files {
        let src = std::fs::read_to_string(&f)
            .map_err(|e| err(pos, format!("include \"{}\": {e}", f.display())))?;
        let file: Arc<str> = f.display().to_string().into();
        let toks = tokenize(&src, &file)?;
        let mut i = 0;
        out.extend(parse_block(&toks, &mut i, &file, true)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_and_braces_inside_words_as_nginx_reads_them() {
        let src = "listen ${RTMP_PORT};\npath /x/${A}_${B}/y;\nb{c x}y;}\n";
        let t = parse_str(src, "t.conf", Path::new("."), 0).unwrap();
        assert_eq!(t[0].args, ["${RTMP_PORT}"]);
        assert_eq!(t[1].args, ["/x/${A}_${B}/y"]);
        // `{` still opens a block after a plain word; `}` inside a word
        // belongs to it, at a token's start it closes the block.
        assert_eq!(t[2].name, "b");
        let inner = t[2].block.as_ref().unwrap();
        assert_eq!(inner[0].name, "c");
        assert_eq!(inner[0].args, ["x}y"]);
    }

    #[test]
    fn blocks_quotes_comments_lines() {
        let src = "a 1;\n# c\nb \"x y\" 'z' {\n  c;\n}\n";
        let t = parse_str(src, "t.conf", Path::new("."), 0).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].args, vec!["x y", "z"]);
        assert_eq!(t[1].pos.line, 3);
        assert_eq!(t[1].block.as_ref().unwrap()[0].pos.line, 4);
    }

    #[test]
    fn syntax_errors_have_lines() {
        let e = parse_str("a {\n b;\n", "f", Path::new("."), 0).unwrap_err();
        assert!(e.msg.contains("unexpected end of file"), "{e}");
        let e = parse_str("a;\n}\n", "f", Path::new("."), 0).unwrap_err();
        assert_eq!(e.pos.line, 2);
        let e = parse_str("a\nb", "f", Path::new("."), 0).unwrap_err();
        assert_eq!(e.pos.line, 1);
    }
}
