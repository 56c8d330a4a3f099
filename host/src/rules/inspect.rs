//! What a component says about itself before it runs: which `vigil:rule`
//! version its imports name, and whether it exports the rule world. Gives
//! a clear refusal for components built against another contract.

use anyhow::{Result, bail};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::bindings::{WIT_PACKAGE, WIT_VERSION};

#[derive(Clone, Debug)]
pub struct ComponentInfo {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// The `vigil:rule` version named by the imports, if any.
    pub wit_version: Option<String>,
}

pub fn inspect_component(engine: &Engine, component: &Component) -> ComponentInfo {
    let ty = component.component_type();
    let imports: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let wit_version = imports.iter().find_map(|name| {
        let rest = name.strip_prefix(WIT_PACKAGE)?.strip_prefix('/')?;
        rest.split_once('@').map(|(_, v)| v.to_owned())
    });
    ComponentInfo {
        imports,
        exports,
        wit_version,
    }
}

impl ComponentInfo {
    /// Refuses components built for another contract version or world.
    pub fn check_compatible(&self) -> Result<()> {
        for export in ["metadata", "on-event"] {
            if !self.exports.iter().any(|e| e == export) {
                bail!(
                    "it does not export `{export}`: it was not built for the {WIT_PACKAGE} world \
                     (exports: {})",
                    if self.exports.is_empty() {
                        "none".into()
                    } else {
                        self.exports.join(", ")
                    }
                );
            }
        }
        match &self.wit_version {
            Some(v) if v == WIT_VERSION => Ok(()),
            Some(v) => bail!(
                "it was built against {WIT_PACKAGE}@{v}; this host implements {WIT_PACKAGE}@{WIT_VERSION}"
            ),
            // A rule that imports nothing from Vigil is still a valid rule
            // (it can only report findings).
            None => Ok(()),
        }
    }
}
