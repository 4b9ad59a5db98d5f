//! Pure work spread over the machine's cores, results in input order
//! (selecting for every Flux policy, preparing and deciding every Argo CD
//! application), and what such work shares.

use std::collections::HashMap;
use std::sync::{Mutex, mpsc};

/// `items.map(f)` on every core, results in input order. Each worker, the
/// calling thread among them, takes the next item when it is free, so
/// expensive items that cluster still spread evenly; fewer items than
/// cores start fewer threads, and one starts none.
pub fn map<T: Send, R: Send>(items: impl Iterator<Item = T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let items: Vec<T> = items.collect();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
        .min(items.len());
    if workers <= 1 {
        return items.into_iter().map(f).collect();
    }
    let (send, receive) = mpsc::channel::<(usize, T)>();
    for item in items.into_iter().enumerate() {
        send.send(item).expect("the receiver is still here");
    }
    drop(send);
    let receive = Mutex::new(receive);
    let work = || {
        let mut done = Vec::new();
        loop {
            let next = receive
                .lock()
                .expect("no worker panics holding the lock")
                .recv();
            let Ok((i, item)) = next else {
                return done;
            };
            done.push((i, f(item)));
        }
    };
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..workers).map(|_| scope.spawn(work)).collect();
        let mut done = work();
        for helper in helpers {
            done.extend(helper.join().expect("a worker thread panicked"));
        }
        done
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Values by file name, each made once however many threads ask (a
/// file read, a file parsed). Made outside the lock; should two threads
/// make one at once, the first kept is the one every asker gets.
pub struct Memo<V>(Mutex<HashMap<String, V>>);

impl<V> Default for Memo<V> {
    fn default() -> Memo<V> {
        Memo(Mutex::new(HashMap::new()))
    }
}

impl<V: Clone> Memo<V> {
    pub fn get(&self, key: &str, make: impl FnOnce() -> V) -> V {
        let known = self.0.lock().expect("not poisoned").get(key).cloned();
        known.unwrap_or_else(|| {
            let made = make();
            let mut values = self.0.lock().expect("not poisoned");
            values.entry(key.to_string()).or_insert(made).clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_mapped_once_and_in_input_order() {
        for n in [0, 1, 2, 7, 1000] {
            let calls = std::sync::atomic::AtomicUsize::new(0);
            let out = map(0..n, |i| {
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                i * 3
            });
            assert_eq!(out, (0..n).map(|i| i * 3).collect::<Vec<_>>());
            assert_eq!(calls.into_inner(), n);
        }
    }

    #[test]
    fn a_memo_makes_each_value_once_and_gives_every_asker_the_same() {
        let memo = Memo::default();
        let made = std::sync::atomic::AtomicUsize::new(0);
        let make = |v: usize| {
            made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            v
        };
        assert_eq!(memo.get("a", || make(1)), 1);
        assert_eq!(memo.get("a", || make(2)), 1);
        assert_eq!(memo.get("b", || make(3)), 3);
        assert_eq!(made.load(std::sync::atomic::Ordering::Relaxed), 2);
        // Threads asking at once: one value per key, whoever made it.
        let values = map(0..64, |i| memo.get(&format!("k{}", i % 4), || i));
        for (i, v) in values.iter().enumerate() {
            assert_eq!(*v, values[i % 4], "key k{}", i % 4);
        }
    }
}
