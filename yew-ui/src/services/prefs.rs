//! What the browser remembers between visits (local storage).

/// The display name remembered between visits.
pub fn saved_name() -> String {
    storage().and_then(|s| s.get_item("display_name").ok().flatten()).unwrap_or_default()
}

pub fn save_name(name: &str) {
    if let Some(s) = storage() {
        let _ = s.set_item("display_name", name);
    }
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}
