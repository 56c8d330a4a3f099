//! `vigil:rule/config` (every contract version): the rule's own settings from `[rules.config]`.

use super::RuleState;
impl RuleState {
    /// `config.get`: one of the rule's settings.
    pub fn config_get(&self, key: &str) -> Option<String> {
        self.ctx.config.get(key).cloned()
    }
}
