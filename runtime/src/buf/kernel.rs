//! [`KernelBox`]: a heap value the kernel reads or writes through a raw pointer.
//!
//! An SQE carries plain addresses: of a `statx` buffer, a socket address and its
//! length, a `msghdr` and its iovec array, an fd array, the eventfd counter the driver
//! reads into. Whatever they point to must stay allocated and in place until the op's
//! final CQE, and Rust must make no claim on that memory that the kernel's accesses
//! would break.
//!
//! A `Box<T>` keeps its heap block in place when it moves, but it is not enough: a
//! `Box` asserts unique ownership of its contents, like a `&mut T`, each time it is
//! moved or passed on. Under Rust's aliasing model that invalidates every raw pointer
//! derived from it before, so a pointer taken from a `Box` for an SQE, followed by a
//! move of the `Box` (into the op's slot when its future is dropped), leaves the
//! kernel holding a pointer the compiler may treat as dead: it may keep the contents
//! in registers, or reorder the writes of the `Box`'s owner around the kernel's.
//!
//! # The contract
//!
//! A `KernelBox<T>` holds the allocation as the raw pointer `Box::into_raw` returns and
//! frees it in `Drop`. Moving a `KernelBox` copies that pointer and asserts nothing.
//! [`as_ptr`](KernelBox::as_ptr) and [`as_mut_ptr`](KernelBox::as_mut_ptr) return that
//! same pointer, never one derived from a reference, so every pointer handed out stays
//! valid, whatever happens to the `KernelBox`, until it is dropped.
//!
//! [`get`](KernelBox::get) and [`into_inner`](KernelBox::into_inner) make a reference
//! to the value or move it out. They are safe functions, as `Vec`'s indexing is beside
//! `Vec::as_mut_ptr`: the `KernelBox` cannot know whether the kernel holds a pointer,
//! so the promise is made where a pointer is handed to the kernel. That is an `unsafe
//! impl` of the driver's `Completable` or `Multishot` (or the driver's own wake-up
//! read), whose contract says that the value is not touched from the SQE's submission
//! to its final CQE: these functions are called only before the SQE is submitted (in
//! the op's `new` or `prepare`), and in `complete` (or for the last CQE, in `item`),
//! after the kernel is done.

use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// An owned heap value for the kernel to read or write through a raw pointer: an
/// allocation that never moves and asserts no unique access while it lives (see the
/// module docs).
pub(crate) struct KernelBox<T: ?Sized> {
    /// From `Box::into_raw`; freed (as that `Box`) in `Drop`.
    ptr: NonNull<T>,
    /// The `KernelBox` owns a `T` (for the drop check).
    _owns: PhantomData<T>,
}

impl<T> KernelBox<T> {
    /// Moves `value` into a new heap block.
    pub(crate) fn new(value: T) -> KernelBox<T> {
        KernelBox::from_box(Box::new(value))
    }

    /// The value, moved out of the heap block, which is freed. Only once the kernel is
    /// done with the block (module docs).
    pub(crate) fn into_inner(self) -> T {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `ptr` came from `Box::into_raw` and has not been freed (only `Drop`
        // frees it, and `this` will not be dropped); taking it back as a `Box` once is
        // what `Drop` would do.
        *unsafe { Box::from_raw(this.ptr.as_ptr()) }
    }
}

impl<T: ?Sized> KernelBox<T> {
    /// Takes over `boxed`'s heap block (a boxed slice, say) without moving it.
    pub(crate) fn from_box(boxed: Box<T>) -> KernelBox<T> {
        // SAFETY: `Box::into_raw` never returns null (a box of a zero-sized value or an
        // empty slice holds a dangling, non-null pointer).
        let ptr = unsafe { NonNull::new_unchecked(Box::into_raw(boxed)) };
        KernelBox {
            ptr,
            _owns: PhantomData,
        }
    }

    /// The block's address, for the kernel to read through. The same pointer every
    /// time, valid until the `KernelBox` is dropped, however it moves.
    pub(crate) fn as_ptr(&self) -> *const T {
        self.ptr.as_ptr()
    }

    /// The block's address, for the kernel to write through; as [`as_ptr`](Self::as_ptr).
    pub(crate) fn as_mut_ptr(&mut self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// The value. Only while the kernel does not write it (module docs).
    pub(crate) fn get(&self) -> &T {
        // SAFETY: `ptr` points to a live, initialised T that this KernelBox owns, and
        // `&self` keeps it from being freed while the reference lives. Rust writes it
        // only through `as_mut_ptr`, the kernel's pointer, and neither Rust nor the
        // kernel writes it meanwhile, by the contract of whoever handed the kernel a
        // pointer (module docs). The reference is derived from `ptr`, so the pointers
        // handed out before stay valid after it.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: ?Sized> Drop for KernelBox<T> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `Box::into_raw` and is freed only here; the kernel is
        // done with the block by the time its owner drops it (rule 1: an op's value is
        // dropped only after its final CQE, or when its SQE never reached the kernel).
        drop(unsafe { Box::from_raw(self.ptr.as_ptr()) });
    }
}

impl<T: ?Sized> fmt::Debug for KernelBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only the address: the contents may be the kernel's right now.
        f.debug_tuple("KernelBox").field(&self.ptr).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::KernelBox;

    #[test]
    fn a_pointer_taken_before_moves_still_writes_the_value_the_box_reads() {
        let mut boxed = KernelBox::new(0_u64);
        let early = boxed.as_mut_ptr();
        // Moved the ways an op is: into a struct, a Vec, a Box<dyn Any>.
        struct Op {
            buf: KernelBox<u64>,
        }
        let op = Op { buf: boxed };
        let mut ops = vec![op];
        let moved: Box<dyn std::any::Any> = Box::new(ops.pop().unwrap());
        // Standing in for the kernel: a write through the pointer handed out first.
        // SAFETY: `early` points to the live u64 the KernelBox owns; no reference to it
        // is alive.
        unsafe { early.write(42) };
        let op = moved.downcast::<Op>().unwrap();
        assert_eq!(*op.buf.get(), 42);
        assert_eq!(op.buf.as_ptr(), early.cast_const(), "the block never moved");
    }

    #[test]
    fn pointers_handed_out_stay_valid_across_reads_and_new_pointers() {
        let mut boxed = KernelBox::new([0_i32; 4]);
        let early = boxed.as_mut_ptr().cast::<i32>();
        // SAFETY: `early` points to the first of the four live i32s; no reference to
        // them is alive.
        unsafe { early.add(1).write(7) };
        assert_eq!(boxed.get()[1], 7);
        let later = boxed.as_mut_ptr().cast::<i32>();
        assert_eq!(later, early, "the same pointer every time");
        // SAFETY: as above: the reference `get` made is dead.
        unsafe { later.add(3).write(5) };
        // SAFETY: as above; a read through the first pointer after a write through the
        // second and a reference: all of them stay valid.
        unsafe { early.add(2).write(early.add(3).read() + 4) };
        assert_eq!(boxed.into_inner(), [0, 7, 9, 5]);
    }

    #[test]
    fn a_boxed_slice_keeps_its_block_and_length() {
        let vec = vec![1_u8, 2, 3];
        let before = vec.as_ptr();
        let mut boxed = KernelBox::from_box(vec.into_boxed_slice());
        assert_eq!(boxed.as_ptr().cast::<u8>(), before);
        let ptr = boxed.as_mut_ptr();
        // SAFETY: a slice pointer from a live block; the kernel's write stands in here.
        unsafe { ptr.cast::<u8>().add(2).write(30) };
        assert_eq!(boxed.get(), &[1, 2, 30]);
        // An empty slice is a block too (a dangling, never-freed one).
        let empty: KernelBox<[libc::iovec]> = KernelBox::from_box(Vec::new().into_boxed_slice());
        assert!(empty.get().is_empty());
    }

    /// Counts its drops.
    struct Counted(Rc<Cell<usize>>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    #[test]
    fn the_value_is_dropped_exactly_once() {
        let drops = Rc::new(Cell::new(0));
        let boxed = KernelBox::new(Counted(drops.clone()));
        assert_eq!(drops.get(), 0);
        drop(boxed);
        assert_eq!(drops.get(), 1, "dropping the box drops the value");

        let inner = KernelBox::new(Counted(drops.clone())).into_inner();
        assert_eq!(
            drops.get(),
            1,
            "into_inner moves the value out, not drops it"
        );
        drop(inner);
        assert_eq!(drops.get(), 2);

        let slice = KernelBox::from_box(
            vec![Counted(drops.clone()), Counted(drops.clone())].into_boxed_slice(),
        );
        drop(slice);
        assert_eq!(drops.get(), 4, "every element of a boxed slice is dropped");
    }
}
