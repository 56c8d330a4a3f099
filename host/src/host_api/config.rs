//! `vigil:rule/config`: the rule's own settings from `[rules.config]`.

use super::RuleState;
use crate::bindings::vigil::rule::config::Host;

impl Host for RuleState {
    fn get(&mut self, key: String) -> Option<String> {
        self.ctx.config.get(&key).cloned()
    }
}
