//! Getting into a room: the join click turned into a call request (the key made in the lobby,
//! the camera if it is open, an audio context created inside the click so it may play), and for
//! a meeting the server's answer first (password, waiting room): while the host decides, the
//! room token is polled for and the call starts once admitted.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use super::{IdentitySlot, LocalMedia, RoomHandle};
use crate::services::api;
use crate::services::call::JoinRequest;
use crate::services::js;
use crate::services::media::audio_out::Playback;
use crate::services::transport::Preference;

/// How often the waiting room asks whether the host let us in.
const WAITING_POLL_MS: i32 = 1_000;

/// What the lobby's join button says.
#[derive(Clone, PartialEq)]
pub struct JoinChoice {
    pub display_name: String,
    pub preference: Preference,
    pub audio_on: bool,
    pub video_on: bool,
    /// The meeting password, when the meeting has one.
    pub password: String,
}

/// Where joining a meeting stands before the call starts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Lobby,
    Asking,
    Waiting,
}

#[derive(Clone)]
pub struct AdmissionHandle {
    pub state: UseStateHandle<Admission>,
    pub error: UseStateHandle<Option<String>>,
    room_name: String,
    meeting: Option<String>,
    identity: IdentitySlot,
    media: LocalMedia,
    room: RoomHandle,
    /// The request waiting for the server's answer.
    pending: Rc<RefCell<Option<JoinRequest>>>,
    /// Cleared when the page goes: the waiting room's polling stops.
    alive: Rc<Cell<bool>>,
}

impl AdmissionHandle {
    /// The join click.
    pub fn join(&self, choice: JoinChoice) {
        if videocall_types::DisplayName::parse(&choice.display_name).is_err() {
            return self.error.set(Some("Type the name others will see (1 to 64 characters).".into()));
        }
        crate::services::prefs::save_name(&choice.display_name);
        // Created inside the click, so the browser lets it play.
        let audio_context = match Playback::context() {
            Ok(c) => c,
            Err(e) => return self.error.set(Some(format!("audio: {e}"))),
        };
        let Some(key) = self.identity.key.borrow_mut().take() else {
            return self.error.set(Some("Your key is not ready yet.".into()));
        };
        // May still be opening (a kiosk link joins before the camera is open): the room page
        // hands it over when it is.
        let stream = self.media.take.emit(());
        let request = JoinRequest {
            room: self.room_name.clone(),
            meeting: self.meeting.clone(),
            display_name: choice.display_name.clone(),
            preference: choice.preference,
            identity: key,
            stream,
            audio_on: choice.audio_on,
            video_on: choice.video_on,
            audio_context,
        };
        let Some(meeting) = self.meeting.clone() else {
            return self.start(request);
        };
        // A meeting: ask the server first; the request waits here meanwhile.
        *self.pending.borrow_mut() = Some(request);
        self.state.set(Admission::Asking);
        let this = self.clone();
        spawn_local(async move {
            match api::join_meeting(&meeting, &choice.display_name, &choice.password).await {
                Ok(view) if view.token.is_some() => this.start_pending(),
                Ok(_) => {
                    this.state.set(Admission::Waiting);
                    this.wait_for_host(meeting).await;
                }
                Err(f) => this.back_to_lobby(f.message),
            }
        });
    }

    fn start(&self, request: JoinRequest) {
        if let Err(e) = self.room.join(request) {
            self.error.set(Some(e));
        }
    }

    /// The call starts with the request that waited for the server's answer.
    fn start_pending(&self) {
        let request = self.pending.borrow_mut().take();
        if let Some(request) = request {
            self.start(request);
        }
    }

    /// Back to the lobby, key and all, to try again.
    fn back_to_lobby(&self, message: String) {
        let request = self.pending.borrow_mut().take();
        if let Some(request) = request {
            *self.identity.key.borrow_mut() = Some(request.identity);
            if let Some(stream) = request.stream {
                crate::services::media::capture::stop(&stream);
            }
        }
        self.state.set(Admission::Lobby);
        self.error.set(Some(message));
    }

    /// Polls for the room token while the host decides; starts the call once admitted.
    async fn wait_for_host(&self, meeting: String) {
        loop {
            js::sleep(WAITING_POLL_MS).await;
            if !self.alive.get() || self.pending.borrow().is_none() {
                return;
            }
            match api::meeting_token(&meeting).await {
                Ok(view) if view.token.is_some() => return self.start_pending(),
                Ok(_) => {}
                // The server restarting, or busy: keep waiting.
                Err(f) if f.status == 0 || f.status == 429 || f.status >= 500 => {}
                Err(f) => return self.back_to_lobby(f.message),
            }
        }
    }
}

#[hook]
pub fn use_admission(
    room_name: &str,
    meeting: Option<String>,
    identity: IdentitySlot,
    media: LocalMedia,
    room: RoomHandle,
) -> AdmissionHandle {
    let state = use_state(|| Admission::Lobby);
    let error = use_state(|| None::<String>);
    let pending = use_mut_ref(|| None::<JoinRequest>);
    let alive = (*use_memo((), |_| Rc::new(Cell::new(true)))).clone();
    {
        let alive = alive.clone();
        use_effect_with((), move |_| move || alive.set(false));
    }
    AdmissionHandle { state, error, room_name: room_name.to_owned(), meeting, identity, media, room, pending, alive }
}
