// SPDX-License-Identifier: MIT
// Base of the managed contracts: the Controller they belong to, and the modifiers (with the
// protocol's revert strings) that consult it.
pragma solidity ^0.8.9;

interface IController {
    function getContract(bytes32 _id) external view returns (address);
    function paused() external view returns (bool);
    function owner() external view returns (address);
}

contract Manager {
    IController public controller;

    event SetController(address controller);
    event ParameterUpdate(string param);

    modifier onlyController() {
        require(msg.sender == address(controller), "caller must be Controller");
        _;
    }

    modifier onlyControllerOwner() {
        require(msg.sender == controller.owner(), "caller must be Controller owner");
        _;
    }

    modifier whenSystemNotPaused() {
        require(!controller.paused(), "system is paused");
        _;
    }

    modifier whenSystemPaused() {
        require(controller.paused(), "system is not paused");
        _;
    }

    constructor(address _controller) {
        controller = IController(_controller);
    }

    function setController(address _controller) external onlyController {
        controller = IController(_controller);
        emit SetController(_controller);
    }

    function registered(string memory _name) internal view returns (address) {
        return controller.getContract(keccak256(bytes(_name)));
    }
}
