//! `roar k8s pod-template`: prints roar-core's pod template (see
//! `roar_core::k8s`) as JSON or YAML.

use std::io::Write;

use anyhow::Result;
use roar_core::k8s;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Yaml,
}

pub fn pod_template(osmo: bool, roar_image: String, format: Format) -> Result<()> {
    let t = k8s::pod_template(&k8s::Options { osmo, roar_image });
    let text = match format {
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&t)?),
        Format::Yaml => k8s::to_yaml(&t),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}
