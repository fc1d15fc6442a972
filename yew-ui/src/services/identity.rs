//! The identity, held by the browser's WebCrypto as non-extractable keys: an RSA-OAEP key that
//! media keys are wrapped to and an ECDSA P-256 key that signs. The page's script
//! (`window.videocallNewIdentity` in `index.html`) generates them, natively and off the main
//! thread, starting before the WebAssembly loads; this side only ever sees the public halves and
//! asks WebCrypto to sign and unwrap.

use std::rc::Rc;

use js_sys::{ArrayBuffer, Function, Object, Promise, Uint8Array};
use videocall_client::crypto::{Fingerprint, IdentityPublic, KeyMaterial};
use videocall_client::peers::{Done, Work};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::CryptoKey;

use super::js;

/// An identity whose private keys never leave WebCrypto.
pub struct BrowserIdentity {
    decrypt: CryptoKey,
    sign: CryptoKey,
    public: IdentityPublic,
}

impl BrowserIdentity {
    pub fn public(&self) -> &IdentityPublic {
        &self.public
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.public.fingerprint()
    }

    /// Performs a private-key operation for the core.
    pub async fn perform(self: Rc<Self>, work: Work) -> Done {
        match work {
            Work::Sign { id, message } => {
                let signature = self.sign(&message).await.map_err(|e| {
                    web_sys::console::error_1(&format!("signing failed: {}", js::describe(&e)).into());
                });
                // An unsigned packet is refused by every receiver: better than none at all,
                // and the failure is on the console.
                Done::Signed { id, signature: signature.unwrap_or_default() }
            }
            Work::Unwrap { id, wrapped } => {
                let key = self.unwrap(&wrapped).await.ok().and_then(|plain| KeyMaterial::from_bytes(&plain));
                Done::Unwrapped { id, key }
            }
        }
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JsValue> {
        let subtle = js::subtle()?;
        let algorithm = Object::new();
        js::set(&algorithm, "name", "ECDSA");
        js::set(&algorithm, "hash", "SHA-256");
        let promise = subtle.sign_with_object_and_u8_array(&algorithm, &self.sign, message)?;
        Ok(Uint8Array::new(&JsFuture::from(promise).await?).to_vec())
    }

    async fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>, JsValue> {
        let subtle = js::subtle()?;
        let algorithm = Object::new();
        js::set(&algorithm, "name", "RSA-OAEP");
        let promise = subtle.decrypt_with_object_and_u8_array(&algorithm, &self.decrypt, wrapped)?;
        Ok(Uint8Array::new(&JsFuture::from(promise).await?).to_vec())
    }
}

/// The identity `index.html` began generating at page load when there is one, else a new one
/// from the same function.
pub async fn generate() -> Result<BrowserIdentity, String> {
    let generated = match super::early::take("identity").await {
        Some(value) => value,
        None => fresh().await.map_err(|e| js::describe(&e))?,
    };
    from_js(&generated).map_err(|e| js::describe(&e))
}

async fn fresh() -> Result<JsValue, JsValue> {
    let window: JsValue = js::window()?.into();
    let generate: Function = js::get(&window, "videocallNewIdentity").dyn_into()?;
    JsFuture::from(generate.call0(&JsValue::NULL)?.dyn_into::<Promise>()?).await
}

/// The identity as `index.html`'s generator gives it (`{decrypt, sign, encryptionDer,
/// signingKey}`): how it is handed to the call's worker (WebCrypto keys can be posted to a
/// worker; they stay non-extractable there).
pub fn to_js(identity: &BrowserIdentity) -> JsValue {
    let value = js::object();
    js::set(&value, "decrypt", &identity.decrypt);
    js::set(&value, "sign", &identity.sign);
    js::set(&value, "encryptionDer", Uint8Array::from(&identity.public.encryption_der[..]).buffer());
    js::set(&value, "signingKey", Uint8Array::from(&identity.public.signing_key[..]).buffer());
    value.into()
}

pub fn from_js(value: &JsValue) -> Result<BrowserIdentity, JsValue> {
    let bytes = |name: &str| -> Result<Vec<u8>, JsValue> {
        let buffer: ArrayBuffer = js::get(value, name).dyn_into()?;
        Ok(Uint8Array::new(&buffer).to_vec())
    };
    Ok(BrowserIdentity {
        decrypt: js::get(value, "decrypt").dyn_into()?,
        sign: js::get(value, "sign").dyn_into()?,
        public: IdentityPublic { encryption_der: bytes("encryptionDer")?, signing_key: bytes("signingKey")? },
    })
}
