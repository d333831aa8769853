//! Helpers shared by kubecur's end-to-end tests: a generated CUR in every flavour, made once per test
//! binary, plus derived plain-CSV and CSV.gz variants so every flavour is read in every encoding.

pub mod pipeline;

use kubecur_shared::sample::{write_sample, SampleLineItem, SampleOutput, SampleSpec};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Line items in the shared sample: enough for every line item type and tag form to appear.
pub const SAMPLE_ROWS: u64 = 30_000;

/// A generated sample and its line items, kept for the whole test binary.
pub struct Sample {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub spec: SampleSpec,
}

impl Sample {
    /// The folder of one output.
    pub fn path(&self, output: SampleOutput) -> PathBuf {
        self.root.join(output.dir_name())
    }

    /// A folder holding the same data as `output`, re-encoded: gzip CSV → plain CSV, plain CSV → gzip CSV.
    pub fn path_reencoded(&self, output: SampleOutput) -> PathBuf {
        self.root.join(format!("{}-reencoded", output.dir_name()))
    }

    /// The line items the sample was generated from.
    pub fn line_items(&self) -> Vec<SampleLineItem> {
        kubecur_shared::sample::sample_line_items(&self.spec)
    }
}

fn reencode(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if path.is_dir() {
            reencode(&path, &to.join(&name))?;
        } else if let Some(stem) = name.strip_suffix(".csv.gz") {
            std::fs::create_dir_all(to)?;
            let mut text = Vec::new();
            flate2::read::GzDecoder::new(std::fs::File::open(&path)?).read_to_end(&mut text)?;
            std::fs::write(to.join(format!("{stem}.csv")), text)?;
        } else if name.ends_with(".csv") {
            std::fs::create_dir_all(to)?;
            let mut encoder = flate2::write::GzEncoder::new(
                std::fs::File::create(to.join(format!("{name}.gz")))?,
                flate2::Compression::fast(),
            );
            encoder.write_all(&std::fs::read(&path)?)?;
            encoder.finish()?;
        }
    }
    Ok(())
}

/// The shared sample, generated on first use.
pub fn sample() -> &'static Sample {
    static SAMPLE: OnceLock<Sample> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = dir.path().to_path_buf();
        let mut spec = SampleSpec::new(SAMPLE_ROWS);
        spec.rows_per_file = 12_000; // several files per output, and months split across files
        write_sample(&root, &spec, |_| {}).expect("sample written");
        for output in [
            SampleOutput::LegacyCsvGz,
            SampleOutput::Cur2CsvGz,
            SampleOutput::FocusCsv,
        ] {
            let from = root.join(output.dir_name());
            let to = root.join(format!("{}-reencoded", output.dir_name()));
            reencode(&from, &to).expect("re-encoded copy");
        }
        Sample {
            _dir: dir,
            root,
            spec,
        }
    })
}

/// A moto server (AWS emulator) on a free loopback port, stopped on drop.
///
/// Started by the test itself so `cargo test` needs nothing running beforehand; `moto_server` must be
/// installed (`scripts/test` and `.ci/run` install `moto[server]==5.2.5`).
pub struct Moto {
    child: std::process::Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let child = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start moto_server ({e}): install it with pip install 'moto[server]==5.2.5' (scripts/test does)")
            });
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "moto_server did not listen on port {port} within 30 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        moto
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
