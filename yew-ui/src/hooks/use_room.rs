//! The room page's state (a reducer the call dispatches into) and its intent methods.

use std::rc::Rc;

use yew::prelude::*;

use crate::services::call::{Call, JoinRequest};
use crate::types::room::{Me, RoomAction, RoomState};

impl Reducible for RoomState {
    type Action = RoomAction;

    fn reduce(self: Rc<Self>, action: RoomAction) -> Rc<Self> {
        let mut next = (*self).clone();
        next.apply(action);
        Rc::new(next)
    }
}

#[derive(Clone, PartialEq)]
pub struct RoomHandle {
    pub state: UseReducerHandle<RoomState>,
    call: UseStateHandle<Option<Call>>,
    /// The same call, for the unmount cleanup (a state handle there would be a stale snapshot).
    current: Rc<std::cell::RefCell<Option<Call>>>,
}

impl RoomHandle {
    pub fn joined(&self) -> bool {
        self.call.is_some()
    }

    pub fn call(&self) -> Option<Call> {
        (*self.call).clone()
    }

    pub fn join(&self, request: JoinRequest) -> Result<(), String> {
        let dispatcher = self.state.dispatcher();
        dispatcher.dispatch(RoomAction::Identity {
            display_name: request.display_name.clone(),
            fingerprint: request.identity.fingerprint().to_string(),
        });
        let call = Call::join(request, Rc::new(move |action| dispatcher.dispatch(action)))?;
        *self.current.borrow_mut() = Some(call.clone());
        self.call.set(Some(call));
        Ok(())
    }

    pub fn toggle_audio(&self) {
        if let Some(call) = self.call.as_ref() {
            call.set_audio(!self.state.me.audio_on);
        }
    }

    pub fn toggle_video(&self) {
        if let Some(call) = self.call.as_ref() {
            call.set_video(!self.state.me.video_on);
        }
    }

    pub fn toggle_screen(&self) {
        if let Some(call) = self.call.as_ref() {
            call.toggle_screen();
        }
    }

    pub fn chat(&self, text: &str) {
        if let Some(call) = self.call.as_ref() {
            call.send_chat(text);
        }
    }

    pub fn leave(&self) {
        if let Some(call) = self.call.as_ref() {
            call.leave();
        }
    }

    pub fn accept_key_change(&self, session: u64) {
        if let Some(call) = self.call.as_ref() {
            call.accept_key_change(session);
        }
    }
}

#[hook]
pub fn use_room(room: &str, display_name: &str) -> RoomHandle {
    let me = Me { display_name: display_name.to_owned(), audio_on: true, video_on: true, ..Me::default() };
    let room = room.to_owned();
    let state = use_reducer(move || RoomState::new(&room, me));
    let call = use_state(|| None::<Call>);
    let current = use_mut_ref(|| None::<Call>);
    {
        // Leaving the page leaves the call.
        let current = current.clone();
        use_effect_with((), move |_| {
            move || {
                if let Some(c) = current.borrow_mut().take() {
                    c.leave();
                }
            }
        });
    }
    RoomHandle { state, call, current }
}
