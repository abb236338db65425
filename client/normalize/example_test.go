package normalize_test

import (
	"fmt"
	"strings"

	"github.com/veilmatch/veilmatch/client/normalize"
)

// A unit in the UK and a unit in the US write the same number differently;
// with their own default regions both get the same canonical value.
func ExampleNormalize() {
	uk, err := normalize.Normalize(normalize.Phone, "07700 900123", normalize.Options{Region: "GB"})
	if err != nil {
		fmt.Println(err)
		return
	}
	us, err := normalize.Normalize(normalize.Phone, "+44 7700 900123", normalize.Options{Region: "US"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(uk.Canonical == us.Canonical, uk.Canonical)

	opts := normalize.Options{EmailProviderRules: true}
	e, err := normalize.Normalize(normalize.Email, " Ana.Silva+ads@GoogleMail.com ", opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(e.Canonical, opts.Metadata(normalize.Email)["email_provider_rules"])

	_, err = normalize.Normalize(normalize.MD5, "0x9E107D9D372BB6826BD81D3542A419", normalize.Options{})
	fmt.Println(err)
	// Output:
	// true +447700900123
	// anasilva@gmail.com on
	// normalize: value rejected: expected 32 hex digits, found 30 characters
}

func ExampleReadCSV() {
	const file = "name,phone\n" +
		"Ana,(202) 555-0123\n" +
		"Bob,\n" +
		"Carl,+1 202 555 0123\n"
	rep, err := normalize.ReadCSV(strings.NewReader(file), "phone", normalize.Phone, normalize.Options{Region: "US"},
		func(r normalize.Row) error {
			fmt.Println("line", r.Line, r.Value)
			if r.Warning != "" {
				fmt.Println("  warning:", r.Warning)
			}
			return nil
		})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d rows, %d accepted\n", rep.Rows, rep.Accepted)
	for _, r := range rep.Rejected {
		fmt.Printf("line %d rejected: %s\n", r.Line, r.Reason)
	}
	// Output:
	// line 2 +12025550123
	// line 4 +12025550123
	//   warning: same value as line 2
	// 3 rows, 2 accepted
	// line 3 rejected: empty value
}
