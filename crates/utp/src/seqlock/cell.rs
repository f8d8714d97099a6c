//! A mapped cell: the region, its validated header, and how it was named.
//! Shared by [`SeqWriter`](super::SeqWriter) and [`SeqReader`](super::SeqReader).

use super::layout::{Header, region_len, type_tag};
use super::place::Place;
use crate::ProtocolReason;
use crate::error::{Error, Result};
use crate::shm::region::Region;
use crate::shm::sync::Ordering;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

/// Options for opening a cell.
#[derive(Clone, Copy, Debug)]
pub struct CellOptions {
    /// Type tag stored in the cell; readers of another tag are refused.
    /// `None`: [`type_tag::<T>()`](super::type_tag), a hash of the type's
    /// name and size.
    pub tag: Option<u64>,
    /// How long [`SeqReader::read`](super::SeqReader::read) retries while
    /// the sequence stays odd before it gives up with an error, if the
    /// writer is alive (a dead writer is reported within about a millisecond).
    pub stall_timeout: Duration,
}

impl Default for CellOptions {
    fn default() -> Self {
        CellOptions {
            tag: None,
            stall_timeout: Duration::from_secs(1),
        }
    }
}

/// A mapped, validated cell.
///
// Invariants: `header` describes `region`'s mapping and is declared first,
// so it is dropped before the region is unmapped; `region.len() ==
// region_len(size)` was checked when the cell was made.
#[derive(Debug)]
pub(crate) struct Cell {
    pub(crate) header: Header,
    pub(crate) region: Region,
    pub(crate) place: Place,
    pub(crate) tag: u64,
    pub(crate) url: String,
}

impl Cell {
    fn wrap(region: Region, place: Place, size: usize, tag: u64, url: &str) -> Result<Cell> {
        let base = NonNull::new(region.as_ptr()).ok_or(Error::Closed)?;
        if region.len() != region_len(size)? {
            return Err(Error::protocol(
                ProtocolReason::Corrupt,
                format!("{place}: wrong size"),
            ));
        }
        // SAFETY: `region` maps `len()` page-aligned bytes, at least
        // region_len(size) (checked above), and the Cell keeps it alive
        // longer than the header (field order).
        let header = unsafe { Header::new(base, region.len(), size) };
        Ok(Cell {
            header,
            region,
            place,
            tag,
            url: url.to_string(),
        })
    }

    /// Creates the cell if it does not exist, else opens it. Returns the
    /// cell and whether this call created it. Does not validate.
    pub(crate) fn create_or_open<T>(url: &str, opts: &CellOptions) -> Result<(Cell, bool)> {
        let place = Place::parse(url)?;
        let size = std::mem::size_of::<T>();
        let len = region_len(size)?;
        let tag = opts.tag.unwrap_or_else(type_tag::<T>);
        let (region, created) = match place.create(len)? {
            Some(region) => (region, true),
            None => (place.open(len)?, false),
        };
        Ok((Cell::wrap(region, place, size, tag, url)?, created))
    }

    /// Opens an existing cell and validates it for `T`, waiting up to
    /// `wait` for a concurrent creator to initialise it.
    pub(crate) fn open<T>(url: &str, opts: &CellOptions, wait: Duration) -> Result<Cell> {
        let place = Place::parse(url)?;
        let size = std::mem::size_of::<T>();
        let len = region_len(size)?;
        let tag = opts.tag.unwrap_or_else(type_tag::<T>);
        let cell = Cell::wrap(place.open(len)?, place, size, tag, url)?;
        let start = Instant::now();
        while cell.header.is_blank() && start.elapsed() < wait {
            std::thread::sleep(Duration::from_millis(1));
        }
        cell.header.validate(tag, url)?;
        Ok(cell)
    }

    /// The pid in the writer claim (0: none).
    pub(crate) fn writer_pid(&self) -> u32 {
        self.header.writer().load(Ordering::Acquire)
    }
}
