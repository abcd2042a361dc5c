//! cxr-edge
