//! A request body as it arrives: `Content-Length` or chunked, of which at
//! most `keep` bytes are held; the rest is counted and discarded (SPEC §8).

use super::head::Framing;

/// Longest chunk-size line (size, extensions) accepted.
const MAX_SIZE_LINE: usize = 1024;
/// Most trailer bytes accepted after the last chunk.
const MAX_TRAILER: usize = 8 * 1024;

/// A malformed chunked body: answered 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadChunk;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// `Content-Length` bytes still to come.
    Length(u64),
    /// Reading a chunk-size line: the size so far, and the line's length.
    Size {
        size: u64,
        digits: usize,
        line: usize,
        ext: bool,
    },
    /// Chunk data still to come.
    Data(u64),
    /// The CRLF after chunk data: how many of its bytes arrived.
    DataEnd(u8),
    /// Trailer lines: the current line's length, and the trailer's.
    Trailer {
        line: usize,
        total: usize,
    },
    Done,
}

/// The body of one request.
#[derive(Debug)]
pub(crate) struct Body {
    state: State,
    /// The first `keep` bytes of the body.
    kept: Vec<u8>,
    keep: usize,
    /// Body bytes seen in all (kept or not).
    seen: u64,
}

impl Body {
    pub(crate) fn new(framing: Framing, keep: usize) -> Body {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Size { size: 0, digits: 0, line: 0, ext: false },
        };
        Body { state, kept: Vec::new(), keep, seen: 0 }
    }

    /// Whether the whole body has arrived.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Body bytes seen so far, held or not.
    pub(crate) fn seen(&self) -> u64 {
        self.seen
    }

    /// The held bytes (the first `keep` of the body).
    pub(crate) fn into_kept(self) -> Vec<u8> {
        self.kept
    }

    /// Consumes body bytes from `data`; returns how many were the body's
    /// (the rest belongs to the next request).
    pub(crate) fn feed(&mut self, data: &[u8]) -> Result<usize, BadChunk> {
        let mut pos = 0;
        while pos < data.len() {
            match self.state {
                State::Done => break,
                State::Length(left) => {
                    let n = self.take(&data[pos..], left);
                    pos += n;
                    self.state = if left == n as u64 { State::Done } else { State::Length(left - n as u64) };
                }
                State::Data(left) => {
                    let n = self.take(&data[pos..], left);
                    pos += n;
                    self.state = if left == n as u64 { State::DataEnd(0) } else { State::Data(left - n as u64) };
                }
                State::DataEnd(got) => {
                    let want = if got == 0 { b'\r' } else { b'\n' };
                    if data[pos] != want {
                        return Err(BadChunk);
                    }
                    pos += 1;
                    self.state = if got == 0 {
                        State::DataEnd(1)
                    } else {
                        State::Size { size: 0, digits: 0, line: 0, ext: false }
                    };
                }
                State::Size { size, digits, line, ext } => {
                    let b = data[pos];
                    pos += 1;
                    if line + 1 > MAX_SIZE_LINE {
                        return Err(BadChunk);
                    }
                    self.state = match b {
                        b'\n' if digits == 0 => return Err(BadChunk),
                        b'\n' if size == 0 => State::Trailer { line: 0, total: 0 },
                        b'\n' => State::Data(size),
                        b'\r' => State::Size { size, digits, line: line + 1, ext: true },
                        _ if ext => State::Size { size, digits, line: line + 1, ext },
                        b';' | b' ' | b'\t' if digits > 0 => State::Size { size, digits, line: line + 1, ext: true },
                        _ => {
                            let digit = (b as char).to_digit(16).ok_or(BadChunk)?;
                            let size = size.checked_mul(16).and_then(|s| s.checked_add(u64::from(digit)));
                            State::Size { size: size.ok_or(BadChunk)?, digits: digits + 1, line: line + 1, ext }
                        }
                    };
                }
                State::Trailer { line, total } => {
                    let b = data[pos];
                    pos += 1;
                    if total + 1 > MAX_TRAILER {
                        return Err(BadChunk);
                    }
                    self.state = match b {
                        // An empty line (only its CR before the LF) ends the trailer.
                        b'\n' if line <= 1 => State::Done,
                        b'\n' => State::Trailer { line: 0, total: total + 1 },
                        _ => State::Trailer { line: line + 1, total: total + 1 },
                    };
                }
            }
        }
        Ok(pos)
    }

    /// Takes up to `left` body bytes from `data`, holding what fits under `keep`.
    fn take(&mut self, data: &[u8], left: u64) -> usize {
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
        let room = self.keep.saturating_sub(self.kept.len()).min(n);
        self.kept.extend_from_slice(&data[..room]);
        self.seen += n as u64;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(framing: Framing, keep: usize, input: &[u8]) -> Result<(Vec<u8>, u64, usize), BadChunk> {
        let mut body = Body::new(framing, keep);
        let used = body.feed(input)?;
        assert!(body.is_done(), "incomplete");
        let seen = body.seen();
        Ok((body.into_kept(), seen, used))
    }

    #[test]
    fn length_and_leftover() {
        let (kept, seen, used) = whole(Framing::Length(5), 100, b"helloGET").unwrap();
        assert_eq!((kept.as_slice(), seen, used), (&b"hello"[..], 5, 5));
        let (kept, seen, _) = whole(Framing::Length(5), 2, b"hello").unwrap();
        assert_eq!((kept.as_slice(), seen), (&b"he"[..], 5));
    }

    #[test]
    fn chunked_with_extensions_and_trailer() {
        let input = b"5;name=v\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        let (kept, seen, used) = whole(Framing::Chunked, 100, input).unwrap();
        assert_eq!((kept.as_slice(), seen), (&b"hello world"[..], 11));
        assert_eq!(&input[used..], b"NEXT");
        let (kept, _, _) = whole(Framing::Chunked, 100, b"A\r\n0123456789\r\n0\r\n\r\n").unwrap();
        assert_eq!(kept, b"0123456789");
    }

    #[test]
    fn any_split_gives_the_same_body() {
        let input = b"3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n";
        for cut in 0..input.len() {
            let mut body = Body::new(Framing::Chunked, 8);
            let a = body.feed(&input[..cut]).unwrap();
            let b = body.feed(&input[cut..]).unwrap();
            assert_eq!(a + b, input.len());
            assert!(body.is_done());
            assert_eq!(body.seen(), 19);
            assert_eq!(body.into_kept(), b"abc01234");
        }
    }

    #[test]
    fn malformed_chunks() {
        for bad in [&b"x\r\n"[..], b"\r\n", b"3\r\nabcX", b"fffffffffffffffff\r\n"] {
            assert_eq!(Body::new(Framing::Chunked, 10).feed(bad), Err(BadChunk), "{bad:?}");
        }
        let long = vec![b'1'; MAX_SIZE_LINE + 1];
        assert_eq!(Body::new(Framing::Chunked, 10).feed(&long), Err(BadChunk));
    }
}
