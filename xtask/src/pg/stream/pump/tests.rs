use std::io::Read;

use super::{relay_dump, Input};
use crate::pg::stream::{DataOnly, StreamProgress, RELAY_BUFFER};

/// A pipe that hands out at most `read` bytes per read, so that lines, headers and end markers
/// are cut at every place.
struct ShortReads<'a> {
    data: &'a [u8],
    read: usize,
}

impl Read for ShortReads<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.read.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// What the relay passed on, each table's rows and whether it was done, and whether the dump
/// ended inside a COPY block.
fn relay(dump: &[u8], read: usize) -> (Vec<u8>, Vec<(String, u64, bool)>, bool) {
    let mut input = Input::new(ShortReads { data: dump, read });
    let (mut out, progress) = (Vec::new(), StreamProgress::default());
    let truncated = relay_dump(&mut input, &mut out, &mut DataOnly, &progress)
        .unwrap_or_else(|_| panic!("relaying in reads of {read} bytes failed"));
    let tables = progress
        .snapshot()
        .into_iter()
        .map(|t| (t.header.table.name.clone(), t.rows, t.done))
        .collect();
    assert_eq!(
        progress.bytes.load(std::sync::atomic::Ordering::Relaxed),
        dump.len() as u64,
        "bytes counted, reads of {read}"
    );
    (out, tables, truncated)
}

/// The relay before it scanned whole buffers: one line at a time, a table's rows being its lines
/// until the one that is exactly `\.`.
fn rows_line_by_line(dump: &[u8]) -> Vec<u64> {
    let (mut tables, mut in_copy) = (Vec::new(), false);
    for line in dump.split_inclusive(|&b| b == b'\n') {
        if in_copy {
            if line == b"\\.\n" {
                in_copy = false;
            } else {
                *tables.last_mut().unwrap() += 1;
            }
        } else if line.starts_with(b"COPY ") {
            tables.push(0);
            in_copy = true;
        }
    }
    tables
}

const DUMP: &[u8] = b"SET statement_timeout = 0;\n\
COPY public.users (id, name) FROM stdin;\n\
1\tAda\n\
2\t\\\\.\n\
3\ta\\.b\\r\n\
\\.\n\
\n\
COPY public.\"Empty One\" (id) FROM stdin;\n\
\\.\n\
SELECT pg_catalog.setval('public.users_id_seq', 3, true);\n\
COPY public.prices (id) FROM stdin;\n\
7\n\
\\.\n";

#[test]
fn every_byte_passes_and_each_tables_rows_are_counted_whatever_the_reads() {
    for read in [1, 2, 3, 5, 13, 64, DUMP.len()] {
        let (out, tables, truncated) = relay(DUMP, read);
        assert_eq!(out, DUMP, "output, reads of {read} bytes");
        assert!(!truncated);
        assert_eq!(
            tables,
            [
                ("users".to_string(), 3, true),
                ("Empty One".to_string(), 0, true),
                ("prices".to_string(), 1, true),
            ],
            "reads of {read} bytes"
        );
    }
}

#[test]
fn a_dump_cut_inside_rows_or_inside_the_end_marker_is_truncated() {
    for cut in [
        b"COPY public.t (a) FROM stdin;\n1\n2".as_slice(),
        b"COPY public.t (a) FROM stdin;\n1\n\\.",
    ] {
        for read in [1, 2, cut.len()] {
            let (out, tables, truncated) = relay(cut, read);
            assert!(truncated, "{cut:?}, reads of {read}");
            assert_eq!(out, cut);
            assert_eq!(tables, [("t".to_string(), 1, false)]);
        }
    }
}

#[test]
fn a_line_outside_copy_data_longer_than_the_buffer_passes_whole() {
    let mut dump = b"SELECT '".to_vec();
    dump.resize(RELAY_BUFFER * 2 + 100, b'x');
    dump.extend_from_slice(b"';\nCOPY public.t (a) FROM stdin;\n1\n\\.\n");
    let (out, tables, truncated) = relay(&dump, RELAY_BUFFER);
    assert_eq!(out, dump);
    assert!(!truncated);
    assert_eq!(tables, [("t".to_string(), 1, true)]);
}

#[test]
fn counts_agree_with_a_line_by_line_count_on_random_copy_text() {
    // Rows drawn from the bytes that matter (backslashes, dots, tabs, CRs, line ends), never a
    // row that is just `\.` (pg_dump writes a backslash as `\\`).
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for _ in 0..200 {
        let mut dump = Vec::new();
        for table in 0..1 + next(3) {
            dump.extend_from_slice(format!("COPY public.t{table} (a) FROM stdin;\n").as_bytes());
            for _ in 0..next(40) {
                let row: Vec<u8> = (0..next(8))
                    .map(|_| b"\\.\ta\r"[next(5) as usize])
                    .collect();
                if row != b"\\." {
                    dump.extend_from_slice(&row);
                    dump.push(b'\n');
                }
            }
            dump.extend_from_slice(b"\\.\n");
        }
        let expected = rows_line_by_line(&dump);
        for read in [1, 2, 3, 7, dump.len()] {
            let (out, tables, _) = relay(&dump, read);
            assert_eq!(out, dump);
            let rows: Vec<u64> = tables.iter().map(|t| t.1).collect();
            assert_eq!(rows, expected, "reads of {read} bytes: {dump:?}");
        }
    }
}
