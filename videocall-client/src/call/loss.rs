//! Loss of a sender's video, as a receiver reports it back in heartbeat answers.

/// Loss from a sender's video sequence numbers: gaps count as lost, late arrivals repair them.
#[derive(Debug, Default)]
pub struct SequenceLoss {
    highest: Option<u64>,
    expected: u64,
    received: u64,
}

impl SequenceLoss {
    pub fn receive(&mut self, sequence: u64) {
        match self.highest {
            None => {
                self.highest = Some(sequence);
                self.expected = 1;
            }
            Some(h) if sequence > h => {
                self.expected += sequence - h;
                self.highest = Some(sequence);
            }
            Some(_) => {}
        }
        self.received += 1;
    }

    /// Loss per thousand since the last call, then starts a new interval.
    pub fn take_permille(&mut self) -> u32 {
        let lost = self.expected.saturating_sub(self.received);
        let permille = (lost * 1000).checked_div(self.expected).unwrap_or(0) as u32;
        self.expected = 0;
        self.received = 0;
        permille
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_counts_gaps_once() {
        let mut l = SequenceLoss::default();
        for s in [1, 2, 3, 5, 6, 8, 9, 10] {
            l.receive(s);
        }
        assert_eq!(l.take_permille(), 200);
        for s in 11..=20 {
            l.receive(s);
        }
        assert_eq!(l.take_permille(), 0);
    }
}
