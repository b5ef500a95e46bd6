// SPDX-License-Identifier: MIT
// lpfleet's local chain: the Livepeer Controller's interface (livepeer/protocol contracts/Controller.sol),
// written for this project. Registry of contract addresses by keccak256(name), owner, pause.
pragma solidity ^0.8.9;

interface IManager {
    function setController(address _controller) external;
}

contract Controller {
    struct ContractInfo {
        address contractAddress;
        bytes20 gitCommitHash;
    }

    address public owner;
    bool public paused;
    mapping(bytes32 => ContractInfo) private registry;

    event SetContractInfo(bytes32 id, address contractAddress, bytes20 gitCommitHash);
    event Pause();
    event Unpause();
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    modifier onlyOwner() {
        require(msg.sender == owner, "caller is not the owner");
        _;
    }

    // As the real one: a new Controller starts paused, and unpause() is a separate step.
    constructor() {
        owner = msg.sender;
        paused = true;
        emit OwnershipTransferred(address(0), msg.sender);
    }

    function setContractInfo(bytes32 _id, address _contractAddress, bytes20 _gitCommitHash) external onlyOwner {
        registry[_id] = ContractInfo(_contractAddress, _gitCommitHash);
        emit SetContractInfo(_id, _contractAddress, _gitCommitHash);
    }

    function updateController(bytes32 _id, address _controller) external onlyOwner {
        IManager(registry[_id].contractAddress).setController(_controller);
    }

    function getContractInfo(bytes32 _id) public view returns (address, bytes20) {
        return (registry[_id].contractAddress, registry[_id].gitCommitHash);
    }

    function getContract(bytes32 _id) public view returns (address) {
        return registry[_id].contractAddress;
    }

    function pause() external onlyOwner {
        require(!paused, "paused");
        paused = true;
        emit Pause();
    }

    function unpause() external onlyOwner {
        require(paused, "not paused");
        paused = false;
        emit Unpause();
    }

    function transferOwnership(address newOwner) external onlyOwner {
        require(newOwner != address(0), "new owner is the zero address");
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }
}
