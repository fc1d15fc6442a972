//! The host's panel state: the meeting's people and whether it records, read from the server
//! every second and a half (so it is the same whichever relay anyone is on), and the host's
//! actions on them.

use std::cell::Cell;
use std::rc::Rc;

use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::services::api::{self, ParticipantView, RecordingView};
use crate::services::js;

/// How often the panel asks the server.
const POLL_MS: i32 = 1_500;

#[derive(Clone, PartialEq)]
pub struct HostPanelHandle {
    meeting: String,
    pub people: UseStateHandle<Vec<ParticipantView>>,
    pub recording: UseStateHandle<bool>,
    /// The files of the recording that just stopped.
    pub files: UseStateHandle<Vec<RecordingView>>,
    pub error: UseStateHandle<Option<String>>,
    /// "End for everyone" was clicked once: the next click ends it.
    pub confirm_end: UseStateHandle<bool>,
    refresh: UseStateHandle<u32>,
}

impl HostPanelHandle {
    /// Reads again now instead of at the next poll.
    fn refresh(&self) {
        self.refresh.set(self.refresh.wrapping_add(1));
    }

    fn outcome(&self, result: Result<(), api::Failure>) {
        match result {
            Ok(()) => self.error.set(None),
            Err(e) => self.error.set(Some(e.message)),
        }
        self.refresh();
    }

    /// `action` (admit, reject, mute, remove) on `user`.
    pub fn act(&self, user: &str, action: &'static str) {
        let (this, user) = (self.clone(), user.to_owned());
        spawn_local(async move {
            let result = api::host_action(&this.meeting, &user, action).await;
            this.outcome(result);
        });
    }

    pub fn toggle_recording(&self) {
        let this = self.clone();
        spawn_local(async move {
            let result = if *this.recording {
                api::stop_recording(&this.meeting).await.map(|list| this.files.set(list))
            } else {
                api::start_recording(&this.meeting).await
            };
            this.outcome(result);
        });
    }

    /// The first click asks for confirmation; the second ends the meeting for everyone.
    pub fn end(&self) {
        if !*self.confirm_end {
            return self.confirm_end.set(true);
        }
        let this = self.clone();
        spawn_local(async move {
            if let Err(e) = api::end_meeting(&this.meeting).await {
                this.error.set(Some(e.message));
            }
        });
    }
}

#[hook]
pub fn use_host_panel(meeting: &str) -> HostPanelHandle {
    let handle = HostPanelHandle {
        meeting: meeting.to_owned(),
        people: use_state(Vec::new),
        recording: use_state(|| false),
        files: use_state(Vec::new),
        error: use_state(|| None),
        confirm_end: use_state(|| false),
        refresh: use_state(|| 0),
    };
    {
        // Polls until the panel goes (and again from the start after an action).
        let (people, error, recording, id) =
            (handle.people.clone(), handle.error.clone(), handle.recording.clone(), meeting.to_owned());
        use_effect_with((meeting.to_owned(), *handle.refresh), move |_| {
            let alive = Rc::new(Cell::new(true));
            let running = alive.clone();
            spawn_local(async move {
                while running.get() {
                    match api::participants(&id).await {
                        Ok(now) if *people != now => people.set(now),
                        Ok(_) => {}
                        Err(e) => error.set(Some(e.message)),
                    }
                    if let Ok(now) = api::recording(&id).await
                        && *recording != now
                    {
                        recording.set(now);
                    }
                    js::sleep(POLL_MS).await;
                }
            });
            move || alive.set(false)
        });
    }
    handle
}
