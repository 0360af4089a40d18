//! What one connection has read and not yet answered: the accounting behind
//! `queued.max.requests` and `queued.max.request.bytes`. Pure bookkeeping; `net::connection`
//! stops reading its socket while `admits` says no (backpressure) and wakes up when responses
//! drain.
//!
//! A request counts from the moment its size is read until its response is written (or, with
//! none due, until its handler ends). While its handler runs, its bytes count, plus the most
//! its response may carry when that is large and known (a fetch's `max_bytes`); from then on
//! its response's bytes count instead, until written. So a client that pipelines and never
//! reads its responses holds at most about `bytes_max` of broker memory (one request or
//! response larger than the bound is let through alone) in at most `requests_max` requests.

/// The in-flight requests and bytes of one connection, against its bounds.
#[derive(Debug)]
pub struct InFlight {
    requests_max: usize,
    bytes_max: usize,
    /// Requests read and not yet answered.
    requests: usize,
    /// Bytes of requests being handled and of responses waiting to be written.
    bytes: usize,
    /// Handlers started and not yet ended.
    running: usize,
}

impl InFlight {
    pub fn new(requests_max: usize, bytes_max: usize) -> InFlight {
        InFlight {
            requests_max: requests_max.max(1),
            bytes_max,
            requests: 0,
            bytes: 0,
            running: 0,
        }
    }

    /// Whether a request of `size` bytes may be read now: within both bounds, or with nothing
    /// else in flight (a request larger than the byte bound, as `socket.request.max.bytes`
    /// allows, is served alone).
    pub fn admits(&self, size: usize) -> bool {
        self.requests == 0
            || (self.requests < self.requests_max
                && self.bytes.saturating_add(size) <= self.bytes_max)
    }

    /// A request of `size` bytes is being read.
    pub fn admit(&mut self, size: usize) {
        self.requests += 1;
        self.bytes += size;
    }

    /// Its handler starts, holding `reserved` bytes more for its response.
    pub fn start(&mut self, reserved: usize) {
        self.running += 1;
        self.bytes = self.bytes.saturating_add(reserved);
    }

    /// Its handler ended with a response of `response_size` bytes (0: none): the `held` bytes
    /// (the request's and those reserved at its start) are let go, the response's are held
    /// until it is written.
    pub fn finish(&mut self, held: usize, response_size: usize) {
        // A slip in this bookkeeping would stall or loosen one connection's bounds, not
        // corrupt anything: checked in tests, saturating in production.
        debug_assert!(
            self.running > 0 && self.bytes >= held,
            "a handler ended that never started: {self:?}, holding {held} bytes"
        );
        self.running = self.running.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(held) + response_size;
    }

    /// Its response of `response_size` bytes was written (or none was due): the request is
    /// answered.
    pub fn answered(&mut self, response_size: usize) {
        debug_assert!(
            self.requests > 0 && self.bytes >= response_size,
            "a response written for no request: {self:?}, response of {response_size} bytes"
        );
        self.requests = self.requests.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(response_size);
    }

    /// Whether every handler started has ended.
    pub fn idle(&self) -> bool {
        self.running == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves a response's reserved bytes count from its handler's start, so requests for large
    /// responses (fetches) are not read beyond the bound before any has been answered.
    #[test]
    fn reserves_bytes_for_large_responses() {
        let mut in_flight = InFlight::new(500, 3000);
        for _ in 0..3 {
            assert!(in_flight.admits(100));
            in_flight.admit(100);
            in_flight.start(900);
        }
        assert!(!in_flight.admits(100));
        in_flight.finish(1000, 700);
        assert!(
            in_flight.admits(100),
            "the response took less than reserved"
        );
        in_flight.finish(1000, 900);
        in_flight.finish(1000, 900);
        assert!(!in_flight.admits(600));
        for response in [700, 900, 900] {
            in_flight.answered(response);
        }
        assert!(in_flight.idle() && in_flight.admits(3000));
    }

    /// Proves the count bound: the request past `requests_max` waits until one is answered.
    #[test]
    fn bounds_requests_by_count() {
        let mut in_flight = InFlight::new(2, 1 << 20);
        for _ in 0..2 {
            assert!(in_flight.admits(100));
            in_flight.admit(100);
            in_flight.start(0);
        }
        assert!(!in_flight.admits(100));
        in_flight.finish(100, 10);
        assert!(!in_flight.admits(100), "ended is not answered");
        in_flight.answered(10);
        assert!(in_flight.admits(100));
    }

    /// Proves the byte bound counts requests while handled and responses until written, and a
    /// request larger than the bound is read when nothing else is in flight.
    #[test]
    fn bounds_bytes_of_requests_then_responses() {
        let mut in_flight = InFlight::new(500, 1000);
        in_flight.admit(600);
        in_flight.start(0);
        assert!(in_flight.admits(400));
        assert!(!in_flight.admits(401));
        in_flight.finish(600, 900);
        assert!(!in_flight.admits(101), "the response is held until written");
        assert!(in_flight.admits(100));
        in_flight.answered(900);
        assert!(in_flight.idle());
        assert!(
            in_flight.admits(5000),
            "alone, any size the frame bound allows"
        );
        in_flight.admit(5000);
        assert!(!in_flight.admits(1));
    }

    /// Proves a request with no response (acks=0) is done when its handler ends, and `idle`
    /// follows the handlers, not the responses.
    #[test]
    fn requests_without_response_end_with_their_handler() {
        let mut in_flight = InFlight::new(1, 100);
        in_flight.admit(50);
        in_flight.start(0);
        assert!(!in_flight.idle());
        in_flight.finish(50, 0);
        assert!(in_flight.idle());
        assert!(!in_flight.admits(1));
        in_flight.answered(0);
        assert!(in_flight.admits(100));
    }
}
