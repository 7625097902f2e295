//! `stratbox plugin build` for a Python project: componentize-py (pinned,
//! from PyPI) turns the project's module, the Python SDK and a bundled
//! CPython into a component of the same WIT world as a Rust plugin.
//!
//! `--stub-wasi` is always passed: without it the component would import
//! about 25 WASI interfaces (files, sockets, clocks, random), which the host
//! does not grant and the loader would refuse anyway.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

/// The componentize-py release every Python plugin is built with.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

#[derive(Debug, thiserror::Error)]
pub enum PythonBuildError {
    #[error("{path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("{path} has no [tool.stratbox] table: add one naming the plugin's module, e.g.\n  [tool.stratbox]\n  module = \"my_strategy\"\n  sdk = \"/path/to/stratbox/sdk/python\"")]
    NotAPlugin { path: PathBuf },
    #[error("{path}: `module = \"{module}\"` names no file {file}")]
    NoModule { path: PathBuf, module: String, file: PathBuf },
    #[error("{path}: the Python SDK was not found at {sdk} (`sdk` in [tool.stratbox]; the folder holding the `stratbox` package)")]
    NoSdk { path: PathBuf, sdk: PathBuf },
    #[error(
        "componentize-py {COMPONENTIZE_PY_VERSION} is needed to build a Python plugin and could not be set up: {why}.\n\
         Install it with one of:\n  \
         python3 -m venv {venv} && {venv}/bin/pip install componentize-py=={COMPONENTIZE_PY_VERSION}\n  \
         pip install componentize-py=={COMPONENTIZE_PY_VERSION}   (then set STRATBOX_COMPONENTIZE_PY to its path)\n\
         (Debian: apt-get install -y python3-venv python3-pip for venv and pip)"
    )]
    NoComponentizePy { why: String, venv: PathBuf },
    #[error("componentize-py failed on {dir} ({status}):\n{output}")]
    Componentize { dir: PathBuf, status: String, output: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// A Python plugin project: `pyproject.toml` with a `[tool.stratbox]` table.
#[derive(Debug, Clone)]
pub struct PythonProject {
    pub dir: PathBuf,
    /// The module holding the `@stratbox.export`ed plugin class.
    pub module: String,
    /// The folder holding the SDK's `stratbox` package.
    pub sdk: PathBuf,
}

#[derive(Deserialize)]
struct PyProject {
    tool: Option<Tool>,
}

#[derive(Deserialize)]
struct Tool {
    stratbox: Option<StratboxTable>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StratboxTable {
    module: String,
    sdk: PathBuf,
}

impl PythonProject {
    /// Reads `dir/pyproject.toml`; `Ok(None)` when there is none.
    pub fn open(dir: &Path) -> Result<Option<Self>, PythonBuildError> {
        let path = dir.join("pyproject.toml");
        let Ok(text) = std::fs::read_to_string(&path) else { return Ok(None) };
        let parsed: PyProject = toml::from_str(&text).map_err(|e| PythonBuildError::Manifest { path: path.clone(), message: e.to_string() })?;
        let table = parsed.tool.and_then(|t| t.stratbox).ok_or_else(|| PythonBuildError::NotAPlugin { path: path.clone() })?;
        let valid = !table.module.is_empty()
            && table.module.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !table.module.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(PythonBuildError::Manifest { path, message: format!("`module = \"{}\"` is not a Python module name", table.module) });
        }
        let file = dir.join(format!("{}.py", table.module));
        if !file.is_file() {
            return Err(PythonBuildError::NoModule { path, module: table.module, file });
        }
        let sdk = dir.join(&table.sdk);
        let sdk = sdk
            .canonicalize()
            .ok()
            .filter(|s| s.join("stratbox/_guest.py").is_file())
            .ok_or(PythonBuildError::NoSdk { path, sdk })?;
        let dir = dir.canonicalize().map_err(|source| PythonBuildError::Io { path: dir.to_owned(), source })?;
        Ok(Some(Self { dir, module: table.module, sdk }))
    }

    /// Where the build's own files and the component go.
    pub fn build_dir(&self) -> PathBuf {
        self.dir.join("build")
    }

    /// The component's default path.
    pub fn component_path(&self) -> PathBuf {
        self.build_dir().join(format!("{}.component.wasm", self.module))
    }
}

/// What a Python build produced.
#[derive(Debug, Clone)]
pub struct PythonBuild {
    pub component: PathBuf,
    pub component_bytes: usize,
    /// The componentize-py that built it.
    pub componentize_py: PathBuf,
}

fn version_of(exe: &Path) -> Option<String> {
    let out = Command::new(exe).arg("--version").stderr(Stdio::null()).output().ok()?;
    // "componentize-py 0.25.1"
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).split_whitespace().last().unwrap_or_default().to_owned())
}

/// componentize-py at the pinned version: `STRATBOX_COMPONENTIZE_PY`, else
/// `dir/.venv`'s (the project's own), created and filled from PyPI when missing.
pub fn find_componentize_py(dir: &Path) -> Result<PathBuf, PythonBuildError> {
    let venv = dir.join(".venv");
    let fail = |why: String| PythonBuildError::NoComponentizePy { why, venv: venv.clone() };
    if let Some(exe) = std::env::var_os("STRATBOX_COMPONENTIZE_PY").map(PathBuf::from) {
        return match version_of(&exe) {
            Some(v) if v == COMPONENTIZE_PY_VERSION => Ok(exe),
            Some(v) => Err(fail(format!("STRATBOX_COMPONENTIZE_PY={} is version {v}", exe.display()))),
            None => Err(fail(format!("STRATBOX_COMPONENTIZE_PY={} does not run", exe.display()))),
        };
    }
    let exe = venv.join("bin/componentize-py");
    if version_of(&exe).as_deref() == Some(COMPONENTIZE_PY_VERSION) {
        return Ok(exe);
    }
    if !venv.join("bin/pip").is_file() {
        let status = Command::new("python3").args(["-m", "venv"]).arg(&venv).stdout(Stdio::null()).status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => return Err(fail(format!("`python3 -m venv {}` failed ({s})", venv.display()))),
            Err(e) => return Err(fail(format!("python3 could not be started ({e})"))),
        }
    }
    let pin = format!("componentize-py=={COMPONENTIZE_PY_VERSION}");
    eprintln!("installing {pin} into {}", venv.display());
    match Command::new(venv.join("bin/pip")).args(["install", "--quiet", &pin]).status() {
        Ok(s) if s.success() => {}
        Ok(s) => return Err(fail(format!("`pip install {pin}` failed ({s}); is PyPI reachable?"))),
        Err(e) => return Err(fail(format!("the venv's pip could not be started ({e})"))),
    }
    match version_of(&exe) {
        Some(v) if v == COMPONENTIZE_PY_VERSION => Ok(exe),
        other => Err(fail(format!("after installing, {} reports {other:?}", exe.display()))),
    }
}

/// The module componentize-py starts from: it binds the exported class to
/// the world's four exports (roles the class lacks answer with nothing).
fn entry_module(module: &str) -> String {
    format!(
        "# Written by `stratbox plugin build`; do not edit.\n\
         import stratbox\n\
         import stratbox._guest as _guest\n\
         import {module}  # noqa: F401  (registers the @stratbox.export class)\n\n\
         Lifecycle, Strategy, StopPolicy, AnomalyDetector = _guest.bind(stratbox.exported())\n"
    )
}

/// Builds the project in `dir` into a component at `output` (default:
/// `build/<module>.component.wasm`).
pub fn build_python(project: &PythonProject, output: Option<&Path>) -> Result<PythonBuild, PythonBuildError> {
    build_python_with(project, output, &find_componentize_py(&project.dir)?)
}

/// [`build_python`] with a given componentize-py executable.
pub fn build_python_with(project: &PythonProject, output: Option<&Path>, exe: &Path) -> Result<PythonBuild, PythonBuildError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| PythonBuildError::Io { path, source }
    };
    let build = project.build_dir();
    let wit = build.join("wit");
    std::fs::create_dir_all(&wit).map_err(io(&wit))?;
    let wit_file = wit.join("stratbox.wit");
    std::fs::write(&wit_file, stratbox_contract::WIT).map_err(io(&wit_file))?;
    let entry = build.join("stratbox_entry.py");
    std::fs::write(&entry, entry_module(&project.module)).map_err(io(&entry))?;
    let target = output.map(Path::to_path_buf).unwrap_or_else(|| project.component_path());
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let tmp = target.with_extension(format!("tmp{}", std::process::id()));
    let out = Command::new(&exe)
        .arg("-d")
        .arg(&wit)
        .args(["-w", "plugin", "componentize", "--stub-wasi", "stratbox_entry", "-p"])
        .arg(&build)
        .arg("-p")
        .arg(&project.dir)
        .arg("-p")
        .arg(&project.sdk)
        .arg("-o")
        .arg(&tmp)
        .current_dir(&project.dir)
        .output()
        .map_err(io(exe))?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        let mut output = String::from_utf8_lossy(&out.stderr).into_owned();
        output.push_str(&String::from_utf8_lossy(&out.stdout));
        return Err(PythonBuildError::Componentize { dir: project.dir.clone(), status: out.status.to_string(), output: output.trim().to_owned() });
    }
    // Renamed into place: a concurrent reader never sees half a component.
    std::fs::rename(&tmp, &target).map_err(io(&target))?;
    let component_bytes = std::fs::metadata(&target).map_err(io(&target))?.len() as usize;
    Ok(PythonBuild { component: target, component_bytes, componentize_py: exe.to_owned() })
}

/// Which language a component was written in, read from what it bundles.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Language {
    pub name: &'static str,
    /// The interpreter a Python component bundles, e.g. "CPython 3.14.0".
    pub runtime: Option<String>,
}

/// componentize-py components carry its runtime library and libpython by
/// name, and CPython's version string (`3.14.0 (main, ...`) in its data;
/// rustc names itself in a module's producers section.
pub fn detect_language(component: &[u8]) -> Language {
    let has = |needle: &[u8]| memchr::memmem::find(component, needle).is_some();
    if has(b"libcomponentize_py_runtime") {
        Language { name: "python", runtime: cpython_version(component) }
    } else if has(b"rustc") {
        // The producers section of a rustc-built core module.
        Language { name: "rust", runtime: None }
    } else {
        Language { name: "unknown", runtime: None }
    }
}

fn cpython_version(bytes: &[u8]) -> Option<String> {
    // Py_GetVersion's text: "3.14.0 (main, <date>, <time>) [Clang ...]".
    const MARK: &[u8] = b" (main, ";
    memchr::memmem::find_iter(bytes, MARK).find_map(|at| {
        let start = bytes[..at].iter().rposition(|b| !(b.is_ascii_digit() || *b == b'.')).map_or(0, |p| p + 1);
        let version = std::str::from_utf8(&bytes[start..at]).ok()?;
        (version.split('.').count() == 3 && version.starts_with('3')).then(|| format!("CPython {version}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(pyproject: &str, files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pyproject.toml"), pyproject).unwrap();
        for f in files {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        dir
    }

    #[test]
    fn a_project_names_its_module_and_the_sdk() {
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/python").canonicalize().unwrap();
        let d = project(&format!("[tool.stratbox]\nmodule = \"my_strat\"\nsdk = {:?}\n", sdk.display().to_string()), &["my_strat.py"]);
        let p = PythonProject::open(d.path()).unwrap().unwrap();
        assert_eq!((p.module.as_str(), p.sdk.as_path()), ("my_strat", sdk.as_path()));
        assert!(p.component_path().ends_with("build/my_strat.component.wasm"));
    }

    #[test]
    fn a_broken_manifest_says_what_is_wrong() {
        let none = tempfile::tempdir().unwrap();
        assert!(PythonProject::open(none.path()).unwrap().is_none(), "no pyproject.toml: not a Python project");
        let d = project("[project]\nname = \"x\"\n", &[]);
        assert!(matches!(PythonProject::open(d.path()), Err(PythonBuildError::NotAPlugin { .. })));
        let d = project("[tool.stratbox]\nmodule = \"missing\"\nsdk = \".\"\n", &[]);
        let e = PythonProject::open(d.path()).unwrap_err().to_string();
        assert!(e.contains("missing.py"), "{e}");
        let d = project("[tool.stratbox]\nmodule = \"a-b\"\nsdk = \".\"\n", &[]);
        assert!(PythonProject::open(d.path()).unwrap_err().to_string().contains("not a Python module name"));
        let d = project("[tool.stratbox]\nmodule = \"m\"\nsdk = \"nowhere\"\n", &["m.py"]);
        assert!(PythonProject::open(d.path()).unwrap_err().to_string().contains("Python SDK was not found"));
        let d = project("[tool.stratbox\n", &[]);
        assert!(matches!(PythonProject::open(d.path()), Err(PythonBuildError::Manifest { .. })));
    }

    #[test]
    fn the_language_is_read_from_what_the_component_bundles() {
        let mut fake = b"\0asm....libcomponentize_py_runtime.so....libpython3.14.so..".to_vec();
        fake.extend_from_slice(b"\x003.14.0 (main, Oct  7 2025, 15:35:12) [Clang 20.1.8]\0");
        assert_eq!(detect_language(&fake), Language { name: "python", runtime: Some("CPython 3.14.0".into()) });
        assert_eq!(detect_language(b"\0asm..producers..processed-by..rustc..").name, "rust");
        assert_eq!(detect_language(b"\0asm....").name, "unknown");
    }
}
