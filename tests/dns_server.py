"""A DNS server of the tests' own, on loopback UDP (dnspython's message codec): A queries get the
next address of `answers` (the last repeats), TXT queries the strings in `txt[name]`; it counts the
A queries it answered. Point the product at it with IAM_DNS_NAMESERVERS=[server.nameserver]."""

import socket
import threading

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class LocalDns:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.answers, self.queries, self.txt = ["127.0.0.1"], 0, {}
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self):
        while True:
            try:
                wire, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(wire)
            response = dns.message.make_response(query)
            question = query.question[0]
            name = question.name.to_text().rstrip(".")
            if question.rdtype == dns.rdatatype.A:
                self.queries += 1
                address = self.answers[min(self.queries - 1, len(self.answers) - 1)]
                response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", address))
            elif question.rdtype == dns.rdatatype.TXT and name in self.txt:
                values = ['"' + value.replace('"', '\\"') + '"' for value in self.txt[name]]
                response.answer.append(dns.rrset.from_text_list(question.name, 60, "IN", "TXT", values))
            elif question.rdtype == dns.rdatatype.TXT:
                response.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(response.to_wire(), peer)

    def close(self):
        self.sock.close()
