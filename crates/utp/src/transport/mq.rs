//! placeholder
#![allow(missing_docs, unused)]
use crate::{endpoint::Endpoint,channel::*,error::*};
pub fn connect(_e:&Endpoint,_o:&Options)->Result<crate::transport::stream::StreamChannel>{todo!()}
pub fn listen(_e:&Endpoint,_o:&Options)->Result<crate::transport::tcp::TcpListener>{todo!()}
