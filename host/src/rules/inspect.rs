//! What a component says about itself before it runs: the `vigil:rule`
//! version its imports name (which picks its adapter in `crate::wit`) and
//! whether it exports the rule world. Gives a clear refusal for components
//! built against an unsupported contract or another world.

use anyhow::{Result, bail};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::wit::{Contract, WIT_PACKAGE};

#[derive(Clone, Debug)]
pub struct ComponentInfo {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

pub fn inspect_component(engine: &Engine, component: &Component) -> ComponentInfo {
    let ty = component.component_type();
    ComponentInfo {
        imports: ty
            .imports(engine)
            .map(|(name, _)| name.to_owned())
            .collect(),
        exports: ty
            .exports(engine)
            .map(|(name, _)| name.to_owned())
            .collect(),
    }
}

impl ComponentInfo {
    /// The contract version the component was built against; refuses a
    /// component of an unsupported version or of another world.
    pub fn check_compatible(&self) -> Result<Contract> {
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
        Contract::of_imports(self.imports.iter().map(String::as_str))
    }
}
