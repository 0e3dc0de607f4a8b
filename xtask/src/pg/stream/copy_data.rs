//! Finds where a COPY block's rows end in a block of pg_dump's output, a whole buffer at a time:
//! memchr counts the rows' line ends and memmem finds the `\.` line that ends the block, so the
//! relay does no work per row. Counts stay exact: in COPY's text format a row never holds a raw
//! newline (it is written `\n`) nor a line that is just `\.` (a backslash is written `\\`).

use memchr::memmem;

/// The line that ends a COPY block's data.
const END_MARKER: &[u8] = b"\\.\n";

/// What one scan found at the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct CopyScan {
    /// Bytes of row data at the front, to pass on. It may end inside a row (a long row split
    /// across reads); it stops short of a possible start of the end marker that the buffer cuts.
    pub data: usize,
    /// Complete rows in those bytes (their line ends).
    pub rows: u64,
    /// The block's end marker follows the data: its length, to pass on after the data.
    pub end_marker: Option<usize>,
}

impl CopyScan {
    /// Whether the next byte after this scan's data starts a line.
    pub fn ends_at_line_start(&self, buf: &[u8], was_at_line_start: bool) -> bool {
        match self.data {
            0 => was_at_line_start,
            n => buf[n - 1] == b'\n',
        }
    }
}

/// Scans `buf`, which holds a COPY block's data from where the last scan stopped;
/// `at_line_start` says whether that is the start of a line.
pub(super) fn scan_copy_data(buf: &[u8], at_line_start: bool) -> CopyScan {
    let marker_at = if at_line_start && buf.starts_with(END_MARKER) {
        Some(0)
    } else {
        memmem::find(buf, b"\n\\.\n").map(|i| i + 1)
    };
    if let Some(at) = marker_at {
        return CopyScan {
            data: at,
            rows: count_line_ends(&buf[..at]),
            end_marker: Some(END_MARKER.len()),
        };
    }
    // A last line cut short that could still become the end marker waits for the next read.
    let last_line = match memchr::memrchr(b'\n', buf) {
        Some(i) => Some(i + 1),
        None => at_line_start.then_some(0),
    };
    let data = match last_line {
        Some(start) if END_MARKER[..END_MARKER.len() - 1].starts_with(&buf[start..]) => start,
        _ => buf.len(),
    };
    CopyScan {
        data,
        rows: count_line_ends(&buf[..data]),
        end_marker: None,
    }
}

fn count_line_ends(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` to the scanner in reads of `read` bytes, as the relay does (what a scan does
    /// not take stays in front of the next read), until the end marker; returns the rows, the
    /// data passed on and what followed the marker.
    fn relay_in_reads(input: &[u8], read: usize) -> (u64, Vec<u8>, Vec<u8>) {
        let (mut pending, mut fed) = (Vec::new(), 0);
        let (mut rows, mut passed, mut at_line_start) = (0, Vec::new(), true);
        loop {
            let scan = scan_copy_data(&pending, at_line_start);
            rows += scan.rows;
            passed.extend_from_slice(&pending[..scan.data]);
            at_line_start = scan.ends_at_line_start(&pending, at_line_start);
            if let Some(marker) = scan.end_marker {
                let mut after = pending[scan.data + marker..].to_vec();
                after.extend_from_slice(&input[fed..]);
                return (rows, passed, after);
            }
            pending.drain(..scan.data);
            assert!(fed < input.len(), "no end marker in {input:?}");
            let next = (fed + read).min(input.len());
            pending.extend_from_slice(&input[fed..next]);
            fed = next;
        }
    }

    fn assert_rows(input: &[u8], rows: u64, after: &[u8]) {
        let data_len = input.len() - after.len() - END_MARKER.len();
        for read in [1, 2, 3, 4, 5, 7, 64, input.len()] {
            let (counted, passed, rest) = relay_in_reads(input, read);
            assert_eq!(counted, rows, "rows, reads of {read} bytes: {input:?}");
            assert_eq!(passed, &input[..data_len], "data, reads of {read} bytes");
            assert_eq!(rest, after, "after the marker, reads of {read} bytes");
        }
    }

    #[test]
    fn counts_rows_up_to_the_end_marker() {
        assert_rows(b"1\ta\n2\tb\n3\tc\n\\.\nSELECT 1;\n", 3, b"SELECT 1;\n");
    }

    #[test]
    fn an_empty_block_has_no_rows() {
        assert_rows(b"\\.\n\n", 0, b"\n");
    }

    #[test]
    fn a_backslash_dot_inside_a_row_is_data() {
        // `\.` within a row, at its end, and a row that is an escaped backslash then a dot.
        assert_rows(b"a\\.b\nx\\.\n\\\\.\n\\\\\\.\n\\.\n", 4, b"");
    }

    #[test]
    fn escaped_backslashes_before_a_line_end_are_data() {
        assert_rows(b"a\\\\\n\\\\\n\\\\\\\\\n\\.\nend", 3, b"end");
    }

    #[test]
    fn carriage_returns_are_data_not_line_ends() {
        // pg_dump writes a row's CR as `\r`; a raw CR is still not a line end, and `\.` then CR
        // is not the end marker.
        assert_rows(b"a\rb\n\\.\r\n\r\n\\.\n", 3, b"");
    }

    #[test]
    fn a_row_longer_than_a_read_is_passed_on_in_pieces() {
        let mut input = vec![b'x'; 10_000];
        input.extend_from_slice(b"\n\\.\n");
        assert_rows(&input, 1, b"");
    }

    #[test]
    fn a_cut_that_may_start_the_marker_waits_for_more() {
        assert_eq!(
            scan_copy_data(b"1\n\\", true),
            CopyScan {
                data: 2,
                rows: 1,
                end_marker: None
            }
        );
        assert_eq!(scan_copy_data(b"\\.", true).data, 0);
        // Inside a row, the same bytes are data.
        assert_eq!(scan_copy_data(b"\\.", false).data, 2);
        assert_eq!(scan_copy_data(b"1\n\\x", true).data, 4);
    }
}
