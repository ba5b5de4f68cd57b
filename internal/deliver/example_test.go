package deliver_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/contrailhq/contrail/internal/deliver"
)

// A campaign's webhook URL is checked when the campaign is published.
func ExampleCheckURL() {
	ctx := context.Background()
	for _, u := range []string{"https://93.184.216.34/hook", "http://169.254.169.254/latest/meta-data/", "ftp://93.184.216.34/"} {
		err := deliver.CheckURL(ctx, u, false)
		fmt.Println(u, err == nil, errors.Is(err, deliver.ErrPrivateAddress), errors.Is(err, deliver.ErrInvalidURL))
	}
	// Output:
	// https://93.184.216.34/hook true false false
	// http://169.254.169.254/latest/meta-data/ false true false
	// ftp://93.184.216.34/ false false true
}
