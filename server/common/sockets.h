// Socket helpers for servers whose libraries keep no list of their
// connections.

#ifndef WEBHOOKD_SERVER_COMMON_SOCKETS_H_
#define WEBHOOKD_SERVER_COMMON_SOCKETS_H_

namespace webhookd {

// Shuts down (both ways) every connected socket of this process whose local
// port is `port`: the connections a server listening on `port` accepted.
// A thread blocked reading one of them returns at once. Linux only (it
// reads /proc/self/fd); elsewhere it does nothing.
void ShutdownConnectionsOnPort(int port);

}  // namespace webhookd

#endif  // WEBHOOKD_SERVER_COMMON_SOCKETS_H_
