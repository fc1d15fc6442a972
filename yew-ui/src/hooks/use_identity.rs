//! The identity key, generated when the lobby opens so joining never waits for it.

use std::cell::RefCell;
use std::rc::Rc;

use crate::services::identity::BrowserIdentity;
use yew::prelude::*;

use crate::services::identity;

/// The key once generated (taken by the call when joining), or why it failed.
#[derive(Clone, Default)]
pub struct IdentitySlot {
    pub key: Rc<RefCell<Option<BrowserIdentity>>>,
    pub fingerprint: Option<String>,
    pub error: Option<String>,
    pub millis: Option<f64>,
}

impl PartialEq for IdentitySlot {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint && self.error == other.error
    }
}

#[hook]
pub fn use_identity() -> IdentitySlot {
    let slot = use_state(IdentitySlot::default);
    {
        let slot = slot.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                let started = crate::services::js::now_ms();
                match identity::generate().await {
                    Ok(key) => {
                        crate::services::js::mark("videocall:identity-ready");
                        let fingerprint = Some(key.fingerprint().to_string());
                        let millis = Some(crate::services::js::now_ms() - started);
                        slot.set(IdentitySlot {
                            key: Rc::new(RefCell::new(Some(key))),
                            fingerprint,
                            error: None,
                            millis,
                        });
                    }
                    Err(e) => slot.set(IdentitySlot { error: Some(e), ..IdentitySlot::default() }),
                }
            });
        });
    }
    (*slot).clone()
}
