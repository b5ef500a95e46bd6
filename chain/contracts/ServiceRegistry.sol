// SPDX-License-Identifier: MIT
// Where gateways find an orchestrator: its service URI, set by the orchestrator's account.
pragma solidity ^0.8.9;

import "./Manager.sol";

contract ServiceRegistry is Manager {
    mapping(address => string) private uris;

    event ServiceURIUpdate(address indexed addr, string serviceURI);

    constructor(address _controller) Manager(_controller) {}

    function setServiceURI(string calldata _serviceURI) external {
        uris[msg.sender] = _serviceURI;
        emit ServiceURIUpdate(msg.sender, _serviceURI);
    }

    function getServiceURI(address _addr) public view returns (string memory) {
        return uris[_addr];
    }
}
