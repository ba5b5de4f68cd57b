package loadgen

// The catalog of the modelled site. Every string here is written into JSON
// without escaping, so it must be printable ASCII without '"' or '\\'
// (TestCatalogNeedsNoEscaping checks).

const siteURL = "https://northwind.shop"

// Pages.
const (
	pageHome = iota
	pageProduct
	pageCollection
	pageBlog
	pagePricing
	pageSearch
	pageCart
	pageSignup
	pageCheckout
	pageAbout
)

var pageNames = [...]string{
	pageHome: "Home", pageProduct: "Product", pageCollection: "Collection", pageBlog: "Blog Post",
	pagePricing: "Pricing", pageSearch: "Search", pageCart: "Cart", pageSignup: "Sign Up",
	pageCheckout: "Checkout", pageAbout: "About Us",
}

// pagePaths are the paths of the pages that have a single one.
var pagePaths = [...]string{
	pageHome: "/", pagePricing: "/pricing", pageCart: "/cart", pageSignup: "/signup",
	pageCheckout: "/checkout", pageAbout: "/about",
}

// pageWeights draws the page of a page view: one entry per percent.
var pageWeights = [...]int{
	pageHome, pageHome, pageHome, pageHome, pageHome, pageHome, pageHome, pageHome, pageHome, pageHome,
	pageHome, pageHome, pageHome, pageHome, pageHome, pageHome, pageHome, pageHome, pageHome, pageHome,
	pageProduct, pageProduct, pageProduct, pageProduct, pageProduct, pageProduct, pageProduct, pageProduct, pageProduct, pageProduct,
	pageProduct, pageProduct, pageProduct, pageProduct, pageProduct, pageProduct, pageProduct, pageProduct, pageProduct, pageProduct,
	pageProduct, pageProduct, pageProduct, pageProduct, pageProduct, pageProduct, pageProduct, pageProduct, pageProduct, pageProduct,
	pageCollection, pageCollection, pageCollection, pageCollection, pageCollection, pageCollection, pageCollection, pageCollection, pageCollection, pageCollection,
	pageBlog, pageBlog, pageBlog, pageBlog, pageBlog, pageBlog, pageBlog, pageBlog, pageBlog, pageBlog,
	pagePricing, pagePricing, pagePricing, pagePricing, pagePricing, pagePricing,
	pageSearch, pageSearch, pageSearch, pageSearch, pageSearch, pageSearch, pageSearch, pageSearch,
	pageCart, pageCart, pageCart, pageCart, pageCart, pageCart,
	pageSignup, pageSignup, pageSignup, pageSignup,
	pageCheckout, pageCheckout, pageCheckout,
	pageAbout, pageAbout, pageAbout,
}

// Track events.
const (
	trackNone = iota - 1
	trackProductViewed
	trackAddedToCart
	trackVideoPlayed
	trackSignedUp
	trackOrderCompleted
)

var trackNames = [...]string{
	trackProductViewed:  "Product Viewed",
	trackAddedToCart:    "Added to Cart",
	trackVideoPlayed:    "Video Played",
	trackSignedUp:       "Signed Up",
	trackOrderCompleted: "Order Completed",
}

type product struct {
	sku, slug, name, category string
	cents                     int
}

var products = [...]product{
	{"sku-10421", "trail-gtx", "Trail Runner GTX", "Shoes", 13999},
	{"sku-10422", "summit-boot", "Summit Hiking Boot", "Shoes", 18950},
	{"sku-10430", "sneaker", "Everyday Sneaker", "Shoes", 7900},
	{"sku-20113", "down-jacket", "Alpine Down Jacket", "Jackets", 27900},
	{"sku-20114", "shell-jacket", "Storm Shell Jacket", "Jackets", 21500},
	{"sku-20120", "fleece-zip", "Fleece Quarter Zip", "Jackets", 6900},
	{"sku-30301", "base-layer", "Merino Base Layer", "Base Layers", 8900},
	{"sku-30302", "socks-3pk", "Merino Socks 3-Pack", "Accessories", 2999},
	{"sku-40015", "tent-2p", "Ultralight Tent 2P", "Camping", 44900},
	{"sku-40021", "down-bag", "Down Sleeping Bag", "Camping", 32000},
	{"sku-40030", "cook-set", "Titanium Cook Set", "Camping", 8495},
	{"sku-50007", "daypack-28", "Daypack 28L", "Packs", 12900},
	{"sku-50008", "pack-65", "Expedition Pack 65L", "Packs", 29900},
	{"sku-60001", "headlamp", "Headlamp 400 Lumen", "Accessories", 4950},
	{"sku-60002", "poles", "Carbon Trekking Poles", "Accessories", 15900},
	{"sku-60003", "bottle", "Insulated Bottle 750ml", "Accessories", 3400},
}

var categories = [...]struct{ slug, name string }{
	{"shoes", "Shoes"}, {"jackets", "Jackets"}, {"base-layers", "Base Layers"},
	{"camping", "Camping"}, {"packs", "Packs"}, {"accessories", "Accessories"}, {"sale", "Sale"},
}

type post struct {
	slug, title string
	seconds     int // length of the post's video
}

var posts = [...]post{
	{"winter-layers", "How to Layer for Winter Hikes", 412},
	{"first-tent", "Choosing Your First Tent", 538},
	{"trail-running", "Trail Running for Beginners", 367},
	{"weekend-packing", "Weekend Packing List", 295},
	{"down-care", "Caring for Down Gear", 244},
	{"alps-hikes", "Day Hikes in the Alps", 721},
}

var searchTerms = [...]string{
	"rain+jacket", "tent", "merino", "hiking+boots+women", "headlamp", "sleeping+bag", "gift+card", "socks",
}

var campaigns = [...]struct{ source, medium, name, referrer string }{
	{"google", "cpc", "spring_sale_2025", "https://www.google.com/"},
	{"newsletter", "email", "weekly_digest_19", ""},
	{"facebook", "paid_social", "retargeting_q2", "https://l.facebook.com/"},
	{"instagram", "social", "summit_launch", "https://l.instagram.com/"},
	{"partner_blog", "referral", "gear_guide", "https://www.outdoorgearlab.com/"},
}

var referrers = [...]string{
	"", "", "", "", "", "", "", "", siteURL + "/", siteURL + "/", siteURL + "/collections/sale",
	"https://www.google.com/", "https://www.google.com/", "https://www.google.com/",
	"https://www.bing.com/", "https://duckduckgo.com/", "https://t.co/", "https://www.reddit.com/r/CampingGear/",
}

var userAgents = [...]string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:125.0) Gecko/20100101 Firefox/125.0",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
}

var locales = [...]string{"en-US", "en-US", "en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "nl-NL", "en-CA", "sv-SE"}

// ipFirstOctets are first octets of public address blocks.
var ipFirstOctets = [...]uint8{24, 31, 46, 62, 73, 81, 86, 92, 98, 104, 109, 151, 176, 185, 188, 203, 212, 217}

var firstNames = [...]string{
	"Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Sophia", "Elijah", "Mia", "Lucas",
	"Hannah", "Mateo", "Chloe", "Jonas", "Lea", "Ravi", "Yuki", "Ana", "Tomasz", "Ingrid",
}

var lastNames = [...]string{
	"Smith", "Garcia", "Muller", "Martin", "Rossi", "Jensen", "Kowalski", "Tanaka", "Silva", "Brown",
	"Novak", "Dubois", "Larsen", "Patel", "Nguyen", "Okafor",
}

var emailDomains = [...]string{"gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me", "fastmail.com"}

var plans = [...]string{"free", "free", "starter", "pro", "team", "enterprise"}

var signupMethods = [...]string{"email", "google", "apple", "github"}
