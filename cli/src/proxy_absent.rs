//! `kubecur serve --api URL` in a build without the feature `aws` (`--no-default-features`): the
//! proxy's interface with no way to make one, so `--api` stops at start with the rebuild to run.

use crate::serve::Answer;
use crate::CliError;

/// No value of this type exists: `connect` always refuses.
pub enum Proxy {}

impl Proxy {
    pub async fn connect(_base: &str, _region: Option<String>) -> Result<Proxy, CliError> {
        Err(CliError::not_built("kubecur serve --api"))
    }

    pub fn describe(&self) -> String {
        match *self {}
    }

    pub async fn forward(&self, _path: &str, _query: &str) -> Result<Answer, String> {
        match *self {}
    }
}
