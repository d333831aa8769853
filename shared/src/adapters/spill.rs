//! [`DiskRuns`]: sorted runs of display rows in temporary files, for allocations with more rows than
//! memory should hold ([`crate::service::allocate_for_display`]). Each run is an anonymous temporary
//! file (removed by the system when closed, even when kubecur is killed), written and read back
//! through buffers. A row is stored as: the number of keys (u32), each key as its length (u32) and
//! UTF-8 bytes, the allocated flag (u8), the four costs and the four shared parts (f64 each, the
//! exact bits), the resource count and the line items (u64); little-endian throughout.

use crate::domain::{AllocationRow, CostVector};
use crate::ports::{EngineError, RunRows, RunStore};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

/// Runs in temporary files under a directory.
pub struct DiskRuns {
    dir: PathBuf,
    files: Vec<File>,
}

impl DiskRuns {
    /// Runs under `dir` (the system's temporary directory by default: `TMPDIR` on Unix).
    pub fn new(dir: Option<PathBuf>) -> DiskRuns {
        DiskRuns {
            dir: dir.unwrap_or_else(std::env::temp_dir),
            files: Vec::new(),
        }
    }

    fn failed(&self, doing: &str, e: std::io::Error) -> EngineError {
        EngineError::Storage {
            context: format!(
                "{doing} a run of sorted rows under `{}` (set TMPDIR to a directory with room)",
                self.dir.display()
            ),
            source: Box::new(e),
        }
    }
}

impl RunStore for DiskRuns {
    fn write_run(&mut self, rows: &[AllocationRow]) -> Result<(), EngineError> {
        let file = tempfile::tempfile_in(&self.dir).map_err(|e| self.failed("creating", e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        for row in rows {
            write_row(&mut out, row).map_err(|e| self.failed("writing", e))?;
        }
        let file = out
            .into_inner()
            .map_err(|e| self.failed("writing", e.into_error()))?;
        self.files.push(file);
        Ok(())
    }

    fn read_runs(&mut self) -> Result<Vec<RunRows>, EngineError> {
        let mut runs: Vec<RunRows> = Vec::with_capacity(self.files.len());
        for mut file in std::mem::take(&mut self.files) {
            file.seek(SeekFrom::Start(0))
                .map_err(|e| self.failed("reading", e))?;
            let dir = self.dir.clone();
            let mut input = BufReader::with_capacity(1 << 16, file);
            runs.push(Box::new(std::iter::from_fn(move || {
                read_row(&mut input)
                    .map_err(|e| EngineError::Storage {
                        context: format!(
                            "reading back a run of sorted rows under `{}`",
                            dir.display()
                        ),
                        source: Box::new(e),
                    })
                    .transpose()
            })));
        }
        Ok(runs)
    }
}

fn write_row(out: &mut impl Write, row: &AllocationRow) -> std::io::Result<()> {
    let count = u32::try_from(row.keys.len()).map_err(std::io::Error::other)?;
    out.write_all(&count.to_le_bytes())?;
    for key in &row.keys {
        let len = u32::try_from(key.len()).map_err(std::io::Error::other)?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(key.as_bytes())?;
    }
    out.write_all(&[u8::from(row.allocated)])?;
    for value in row.costs.0.iter().chain(&row.shared.0) {
        out.write_all(&value.to_le_bytes())?;
    }
    out.write_all(&row.resources.to_le_bytes())?;
    out.write_all(&row.line_items.to_le_bytes())
}

/// The next row, `None` at the end of the run (an end inside a row is an error).
fn read_row(input: &mut impl Read) -> std::io::Result<Option<AllocationRow>> {
    let mut word = [0u8; 4];
    match input.read_exact(&mut word) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let count = u32::from_le_bytes(word) as usize;
    let mut keys = Vec::with_capacity(count);
    for _ in 0..count {
        input.read_exact(&mut word)?;
        let mut bytes = vec![0u8; u32::from_le_bytes(word) as usize];
        input.read_exact(&mut bytes)?;
        keys.push(String::from_utf8(bytes).map_err(std::io::Error::other)?);
    }
    let mut flag = [0u8; 1];
    input.read_exact(&mut flag)?;
    let mut number = [0u8; 8];
    let mut values = [0f64; 8];
    for value in &mut values {
        input.read_exact(&mut number)?;
        *value = f64::from_le_bytes(number);
    }
    input.read_exact(&mut number)?;
    let resources = u64::from_le_bytes(number);
    input.read_exact(&mut number)?;
    let line_items = u64::from_le_bytes(number);
    Ok(Some(AllocationRow {
        keys,
        allocated: flag[0] != 0,
        costs: CostVector([values[0], values[1], values[2], values[3]]),
        shared: CostVector([values[4], values[5], values[6], values[7]]),
        resources,
        resource_ids: None,
        line_items,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(keys: &[&str], cost: f64) -> AllocationRow {
        AllocationRow {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            allocated: cost > 0.0,
            costs: CostVector([cost, 0.1 + 0.2, -0.0, f64::MIN_POSITIVE]),
            shared: CostVector([1e15, 0.0, 3.5, -2.25]),
            resources: 7,
            resource_ids: None,
            line_items: u64::MAX,
        }
    }

    #[test]
    fn runs_read_back_the_rows_written_bit_for_bit_in_order() {
        let mut store = DiskRuns::new(None);
        let first = vec![row(&["payments", "", "ünïcode\n,\""], 2.0), row(&[], -1.0)];
        let second = vec![row(&["x"], 0.5)];
        store.write_run(&first).expect("written");
        store.write_run(&[]).expect("an empty run");
        store.write_run(&second).expect("written");
        let runs = store.read_runs().expect("read");
        let back: Vec<Vec<AllocationRow>> = runs
            .into_iter()
            .map(|run| run.collect::<Result<_, _>>().expect("each row reads"))
            .collect();
        assert_eq!(back, vec![first, vec![], second]);
    }

    #[test]
    fn a_run_cut_inside_a_row_is_an_error_not_a_shorter_run() {
        let mut bytes = Vec::new();
        write_row(&mut bytes, &row(&["payments"], 1.0)).expect("written");
        bytes.truncate(bytes.len() - 3);
        let err = read_row(&mut bytes.as_slice()).expect_err("cut short");
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
