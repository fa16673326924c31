//! `roar show`'s process tree (rows from `roar_core::proctree`), wrappers folded unless
//! `--all`.

use std::io::Write;

use dag::ProcessRecord;
use roar_core::proctree::rows;

use crate::style::{Style, command_line};

/// Draws the processes as a tree; returns how many were folded into their wrappers.
pub fn draw(
    out: &mut dyn Write,
    procs: &[ProcessRecord],
    all: bool,
    st: &Style,
) -> std::io::Result<usize> {
    let mut total = 0;
    for row in rows(procs, !all) {
        let p = &procs[row.proc];
        let mut prefix = String::new();
        if let Some((me, up)) = row.last.split_last() {
            for &l in up {
                prefix.push_str(if l { "  " } else { "│ " });
            }
            prefix.push_str(if *me { "└─" } else { "├─" });
        }
        let end = match (p.exit_code, p.signal) {
            (_, Some(s)) => format!("signal {s}"),
            (Some(c), _) => format!("exit {c}"),
            _ if row.replaced => "exec".into(),
            _ => "exit ?".into(),
        };
        let mut note = String::new();
        if !row.wrappers.is_empty() {
            let names: Vec<String> = row
                .wrappers
                .iter()
                .map(|&w| command_line(&procs[w].argv[..procs[w].argv.len().min(2)]))
                .collect();
            note = format!("  (via {}", names.join(" → "));
            if row.folded > 0 {
                let s = if row.folded == 1 { "" } else { "es" };
                note.push_str(&format!("; {} helper process{s} folded", row.folded));
            }
            note.push(')');
        }
        total += row.folded;
        writeln!(
            out,
            "    {prefix}{:>7} {:<8} {}{}",
            p.pid,
            end,
            command_line(&p.argv),
            st.dim(&note)
        )?;
    }
    Ok(total)
}
