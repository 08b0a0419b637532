//! go-ftw platform overrides (`--overrides nginx-overrides.yaml`): for the listed
//! `rule_id`/`test_ids` (and optional `stage_ids`), the stage's expected output
//! is replaced by the override's `output` (go-ftw `ApplyPlatformOverrides`).

use std::path::Path;

use serde::Deserialize;

use super::load::{convert_output, Output, RawOutput, TestCase};

#[derive(Deserialize)]
struct RawOverride {
    rule_id: u32,
    #[serde(default)]
    test_ids: Vec<u32>,
    #[serde(default)]
    stage_ids: Vec<usize>,
    #[serde(default)]
    output: Option<RawOutput>,
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    test_overrides: Vec<RawOverride>,
}

struct Override {
    rule_id: u32,
    test_ids: Vec<u32>,
    stage_ids: Vec<usize>,
    output: Output,
}

pub struct Overrides(Vec<Override>);

impl Overrides {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let raw: RawFile = serde_yaml::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self(
            raw.test_overrides
                .into_iter()
                .map(|o| Override {
                    rule_id: o.rule_id,
                    test_ids: o.test_ids,
                    stage_ids: o.stage_ids,
                    output: convert_output(o.output.unwrap_or_default()),
                })
                .collect(),
        ))
    }

    pub fn apply(&self, case: &mut TestCase) {
        for o in self.0.iter().filter(|o| o.rule_id == case.rule_id && o.test_ids.contains(&case.test_id)) {
            for (index, stage) in case.stages.iter_mut().enumerate() {
                if o.stage_ids.is_empty() || o.stage_ids.contains(&index) {
                    stage.output = o.output.clone();
                }
            }
        }
    }
}
