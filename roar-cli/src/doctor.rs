//! `roar doctor`: which backends work here, and exactly why not.

use std::path::PathBuf;

/// The kernel BTF the eBPF backend loads against (`ROAR_BTF` overrides it,
/// for machines that ship BTF elsewhere and for tests that take it away).
pub fn btf_path() -> PathBuf {
    std::env::var_os("ROAR_BTF")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(tracer_ebpf::DEFAULT_BTF), PathBuf::from)
}
