//! A map that forgets its oldest entries past a bound. The webhook remembers owners and
//! admission requests it has answered; a long replay must not make that memory grow without
//! end, and what is forgotten first is what is least likely to be asked about again.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A map of at most `bound` entries; inserting a new key into a full map evicts the oldest one.
#[derive(Debug)]
pub struct BoundedMap<K, V> {
    bound: usize,
    entries: HashMap<K, V>,
    /// Keys in the order they were first inserted: the front is evicted first.
    order: VecDeque<K>,
}

impl<K: Clone + Eq + Hash, V> BoundedMap<K, V> {
    /// An empty map holding at most `bound` entries (none when `bound` is 0).
    pub fn new(bound: usize) -> Self {
        BoundedMap { bound, entries: HashMap::new(), order: VecDeque::new() }
    }

    /// The value for `key`, if remembered.
    pub fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.entries.get(key)
    }

    /// Remembers `value` for `key`. A key already present keeps its age; a new one evicts the
    /// oldest entries while the map is full.
    pub fn insert(&mut self, key: K, value: V) {
        if let Some(slot) = self.entries.get_mut(&key) {
            *slot = value;
            return;
        }
        if self.bound == 0 {
            return;
        }
        while self.entries.len() >= self.bound {
            let Some(oldest) = self.order.pop_front() else { break };
            self.entries.remove(&oldest);
        }
        self.order.push_back(key.clone());
        self.entries.insert(key, value);
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_entries_go_first_and_the_size_stays_bounded() {
        let mut m = BoundedMap::new(3);
        for i in 0..10 {
            m.insert(i, i * 10);
            assert!(m.len() <= 3);
        }
        assert_eq!(m.len(), 3);
        assert_eq!(m.order.len(), 3);
        assert_eq!((m.get(&6), m.get(&7), m.get(&8), m.get(&9)), (None, Some(&70), Some(&80), Some(&90)));
    }

    #[test]
    fn updating_a_key_keeps_its_age() {
        let mut m = BoundedMap::new(2);
        m.insert("a", 1);
        m.insert("b", 2);
        m.insert("a", 3);
        assert_eq!((m.len(), m.get(&"a")), (2, Some(&3)));
        m.insert("c", 4);
        assert_eq!((m.get(&"a"), m.get(&"b"), m.get(&"c")), (None, Some(&2), Some(&4)));
    }

    #[test]
    fn zero_bound_and_clear() {
        let mut none = BoundedMap::new(0);
        none.insert(1, 1);
        assert!(none.is_empty());
        let mut m = BoundedMap::new(2);
        m.insert(1, 1);
        m.clear();
        assert!(m.is_empty() && m.order.is_empty());
        m.insert(2, 2);
        assert_eq!(m.get(&2), Some(&2));
    }
}
