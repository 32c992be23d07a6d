//! What a run leaves: its folder's layout ([`layout`]), the list of its files with sizes and
//! checksums ([`manifest`]), and the upload to S3 ([`upload`]).

pub mod evidence;
pub mod layout;
pub mod manifest;
pub mod upload;
