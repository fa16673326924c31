// The input of the paper's "Compile w/gcc hello" workload (g++ -Wall -O3
// test.cxx): a small C++ program using iostream, so the compiler reads the
// usual pile of headers.
#include <iostream>
#include <string>
#include <vector>

int main() {
    std::vector<std::string> words{"Hello", "world"};
    for (const auto &w : words) std::cout << w << ' ';
    std::cout << std::endl;
    return 0;
}
