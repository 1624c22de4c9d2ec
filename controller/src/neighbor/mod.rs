//! Answering address resolution on behalf of addresses Flowgate owns or
//! knows: the in-switch ARP responder ([`arp`]) and the IPv6
//! neighbour-discovery responder ([`nd`]). Shared by the modules that need
//! them (the overlay answers for tenant ports, the load balancer for its
//! VIPs and service-monitor addresses).

pub mod arp;
pub mod nd;
