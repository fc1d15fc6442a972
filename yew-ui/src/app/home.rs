//! Home: pick a display name, then create a room (a random readable name) or join one by name.

use web_sys::HtmlInputElement;
use yew::prelude::*;
use yew_router::prelude::*;

use super::{Route, save_name, saved_name};
use crate::types::names::room_name;

fn random_words() -> [u32; 4] {
    let mut bytes = [0u8; 16];
    let _ = getrandom::getrandom(&mut bytes);
    let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    [word(0), word(4), word(8), word(12)]
}

#[function_component]
pub fn Home() -> Html {
    let navigator = use_navigator();
    let name = use_node_ref();
    let room = use_node_ref();
    let error = use_state(|| None::<String>);

    let go = {
        let (navigator, name, room, error) = (navigator.clone(), name.clone(), room.clone(), error.clone());
        move |create: bool| {
            let display = name.cast::<HtmlInputElement>().map(|i| i.value()).unwrap_or_default();
            let display = display.trim().to_owned();
            if videocall_types::DisplayName::parse(&display).is_err() {
                error.set(Some("Type the name others will see (1 to 64 characters).".into()));
                return;
            }
            let target = if create {
                room_name(random_words())
            } else {
                room.cast::<HtmlInputElement>().map(|i| i.value()).unwrap_or_default().trim().to_owned()
            };
            if videocall_types::RoomId::parse(&target).is_err() {
                error.set(Some("Room names use letters, digits, '-' and '_' (up to 64).".into()));
                return;
            }
            save_name(&display);
            if let Some(n) = &navigator {
                n.push(&Route::Room { name: target });
            }
        }
    };
    let create = {
        let go = go.clone();
        Callback::from(move |_: MouseEvent| go(true))
    };
    let join = Callback::from(move |e: SubmitEvent| {
        e.prevent_default();
        go(false)
    });
    html! {
        <main class="page home">
            <h1>{"videocall"}</h1>
            <p class="tagline">{"Video meetings, end-to-end encrypted, on your own server."}</p>
            <label>{"Your name"}<input id="display-name" ref={name} value={saved_name()} maxlength="64" placeholder="Ada Lovelace" /></label>
            <button id="create-room" class="primary" onclick={create}>{"Create a room"}</button>
            <form class="join" onsubmit={join}>
                <input id="room-name" ref={room} maxlength="64" placeholder="room name, e.g. brave-otter-harbor-42" />
                <button id="join-room" type="submit">{"Join"}</button>
            </form>
            if let Some(e) = &*error { <p class="error">{ e }</p> }
        </main>
    }
}
